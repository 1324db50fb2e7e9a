//! The provider-key vault over a real SQLite file and a real key file: rows altered in the
//! database do not decrypt (with an error naming the row, never the key), master-key rotation
//! re-wraps every row in one transaction, and a process that started before a rotation keeps
//! delivering.

mod common;

use common::{Fixture, OPERATOR};
use tollgate::{
    AgentId, AgentName, AgentService, Caller, Description, Error, MasterKeys, Metadata, NewAgent, NewProviderKey,
    OwnerId, Principal, ProviderKeyId, ProviderList, ProviderName, ProviderSecret, TokenId, VerifyRequest,
};

const SECRET: &str = "sk-test-0123456789abcdefghij";

struct Vault {
    fixture: Fixture,
    agents: AgentService,
    key_file: std::path::PathBuf,
    owner: OwnerId,
}

async fn vault() -> Vault {
    let fixture = Fixture::new().await;
    let key_file = fixture.path.with_extension("vault.key");
    let agents = AgentService::builder(&fixture.manager, MasterKeys::load_or_create(&key_file).unwrap()).build();
    let owner = fixture.owner("ops").await;
    Vault { fixture, agents, key_file, owner }
}

impl Vault {
    /// A provider key with `secret` and an agent given it, with a credential; returns them.
    async fn agent_with_key(&self, secret: &str) -> (ProviderKeyId, AgentId, Caller) {
        let key = NewProviderKey {
            provider: ProviderName::parse("openai").unwrap(),
            base_url: None,
            description: Description::default(),
            owner: self.owner,
            project: None,
            balance: None,
            metadata: Metadata::default(),
        };
        let operator = Caller::operator();
        let key =
            self.agents.create_provider_key(&operator, key, ProviderSecret::parse(secret).unwrap()).await.unwrap();
        let agent = NewAgent {
            name: AgentName::parse("worker").unwrap(),
            owner: self.owner,
            project: None,
            providers: ProviderList::default(),
            provider_key: Some(key.id),
            description: Description::default(),
            metadata: Metadata::default(),
        };
        let agent = self.agents.create_agent(&operator, agent).await.unwrap();
        let credential = self.agents.create_credential(&operator, &agent.id, None, None).await.unwrap();
        let verified = self.agents.authenticate(credential.secret.expose(), &VerifyRequest::default()).await.unwrap();
        (key.id, agent.id, Caller::new(verified.principal()))
    }

    async fn deliver(&self, agent: &AgentId, caller: &Caller) -> Result<String, Error> {
        self.agents.deliver_provider_key(caller, agent).await.map(|key| key.secret.expose().to_owned())
    }

    /// Runs `sql` on the database file directly, as an attacker with write access would.
    fn tamper(&self, sql: &str, key: &ProviderKeyId) {
        let connection = rusqlite::Connection::open(&self.fixture.path).unwrap();
        assert_eq!(connection.execute(sql, [key.to_string()]).unwrap(), 1, "{sql}");
    }

    /// Flips one bit of byte `index` of the blob `column` of row `key`.
    fn flip(&self, column: &str, index: usize, key: &ProviderKeyId) {
        let connection = rusqlite::Connection::open(&self.fixture.path).unwrap();
        let select = format!("SELECT {column} FROM provider_keys WHERE id = ?");
        let mut blob: Vec<u8> = connection.query_row(&select, [key.to_string()], |row| row.get(0)).unwrap();
        blob[index] ^= 0x01;
        let update = format!("UPDATE provider_keys SET {column} = ?1 WHERE id = ?2");
        assert_eq!(connection.execute(&update, rusqlite::params![blob, key.to_string()]).unwrap(), 1);
    }
}

#[tokio::test]
async fn altered_rows_do_not_decrypt_and_say_which_row() {
    let vault = vault().await;
    let (key, agent, caller) = vault.agent_with_key(SECRET).await;
    assert_eq!(vault.deliver(&agent, &caller).await.unwrap(), SECRET);
    // One bit of the ciphertext, of its tag, of the nonce, of the wrap nonce, of the wrapped key.
    let alterations = [("ciphertext", 3), ("ciphertext", 30), ("nonce", 0), ("wrapped_key", 5), ("wrapped_key", 40)];
    for alteration in alterations {
        let (key, agent, caller) = vault.agent_with_key(SECRET).await;
        vault.flip(alteration.0, alteration.1, &key);
        let error = vault.deliver(&agent, &caller).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Config(_)), "{alteration:?}: {error:?}");
        assert!(message.contains(&key.to_string()) && message.contains("does not decrypt"), "{message}");
        assert!(!message.contains("0123456789"), "{message}");
    }
    // A ciphertext copied onto another row (with its wrapped key and nonce) is bound to its own row.
    let (other, other_agent, other_caller) = vault.agent_with_key("sk-other-zyxwvutsrqponmlkji").await;
    let connection = rusqlite::Connection::open(&vault.fixture.path).unwrap();
    connection
        .execute(
            "UPDATE provider_keys SET (ciphertext, nonce, wrapped_key) =
                 (SELECT ciphertext, nonce, wrapped_key FROM provider_keys WHERE id = ?1) WHERE id = ?2",
            [key.to_string(), other.to_string()],
        )
        .unwrap();
    let error = vault.deliver(&other_agent, &other_caller).await.unwrap_err().to_string();
    assert!(error.contains(&other.to_string()) && error.contains("does not decrypt"), "{error}");
    // A row naming a master key the file does not hold names that key.
    vault.tamper("UPDATE provider_keys SET master_key_id = 99 WHERE id = ?", &key);
    let error = vault.deliver(&agent, &caller).await.unwrap_err().to_string();
    assert!(error.contains("master key 99") && error.contains(&key.to_string()), "{error}");
}

#[tokio::test]
async fn rotation_rewraps_every_row_and_old_rows_still_open_until_then() {
    let vault = vault().await;
    let mut delivered = Vec::new();
    for index in 0..5 {
        let secret = format!("sk-rotate-{index}-abcdefghijklmnop");
        let (_, agent, caller) = vault.agent_with_key(&secret).await;
        delivered.push((agent, caller, secret));
    }
    let before = vault.agents.vault_status(&OPERATOR).await.unwrap();
    assert_eq!(before.master_keys, [(1, 5)]);

    // Another process (the CLI) rotates while this one (the server) keeps running.
    let cli = AgentService::builder(&vault.fixture.manager, MasterKeys::load(&vault.key_file).unwrap()).build();
    let rotation = cli.rotate_master_key(&OPERATOR).await.unwrap();
    assert_eq!((rotation.added, rotation.rewrapped, rotation.master_keys.clone()), (Some(2), 5, vec![1, 2]));
    let status = cli.vault_status(&OPERATOR).await.unwrap();
    assert_eq!((status.current, status.master_keys), (2, vec![(1, 0), (2, 5)]));
    for (agent, caller, secret) in &delivered {
        assert_eq!(&vault.deliver(agent, caller).await.unwrap(), secret, "the running process reads the new key");
    }
    // New rows use the newest key, even from the process that started before the rotation.
    let (_, agent, caller) = vault.agent_with_key("sk-after-rotation-000000").await;
    assert_eq!(vault.agents.vault_status(&OPERATOR).await.unwrap().master_keys, [(1, 0), (2, 6)]);
    assert_eq!(vault.deliver(&agent, &caller).await.unwrap(), "sk-after-rotation-000000");
    // Rewrapping again changes nothing; retiring the old key works once nothing uses it.
    assert_eq!(cli.rewrap_provider_keys(&OPERATOR).await.unwrap().rewrapped, 0);
    cli.retire_master_key(&OPERATOR, 1).await.unwrap();
    assert_eq!(MasterKeys::load(&vault.key_file).unwrap().ids().len(), 1);
    for (agent, caller, secret) in &delivered {
        assert_eq!(&vault.deliver(agent, caller).await.unwrap(), secret);
    }
    // The current key cannot be retired; nobody but the operator may rotate.
    assert!(matches!(cli.retire_master_key(&OPERATOR, 2).await, Err(Error::Validation(_))));
    let admin =
        Principal::Token { id: TokenId::generate(), owner: vault.owner, permission: tollgate::Permission::Admin };
    assert!(matches!(cli.rotate_master_key(&admin).await, Err(Error::Forbidden(_))));
    let audit = vault.fixture.store.clone();
    let entries = tollgate::AuditStore::list_audit(
        &audit,
        &tollgate::AuditFilter { target: Some("master_key:2".to_owned()), ..Default::default() },
        &tollgate::PageRequest::first(10),
    )
    .await
    .unwrap();
    assert_eq!(entries.items[entries.items.len() - 1].event.action, "vault.rotate_master_key");
}

#[tokio::test]
async fn a_key_still_in_use_is_not_retired() {
    let vault = vault().await;
    let (_, agent, caller) = vault.agent_with_key(SECRET).await;
    let mut keys = MasterKeys::load(&vault.key_file).unwrap();
    keys.add_key().unwrap();
    // A key was added without re-wrapping (a crash between the two steps): row 1 still uses key 1.
    let cli = AgentService::builder(&vault.fixture.manager, MasterKeys::load(&vault.key_file).unwrap()).build();
    let refused = cli.retire_master_key(&OPERATOR, 1).await.unwrap_err().to_string();
    assert!(refused.contains("still wraps 1 provider keys") && refused.contains("rewrap"), "{refused}");
    assert_eq!(cli.rewrap_provider_keys(&OPERATOR).await.unwrap().rewrapped, 1);
    cli.retire_master_key(&OPERATOR, 1).await.unwrap();
    assert_eq!(vault.deliver(&agent, &caller).await.unwrap(), SECRET);
}

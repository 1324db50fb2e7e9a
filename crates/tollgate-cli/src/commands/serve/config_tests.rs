//! How `tollgate serve` settings resolve: defaults, the file, flags, contradictions.

use super::*;

/// Global flags with `--db` given (`Some`) or left at its default (`None`).
fn global(db: Option<&str>) -> GlobalArgs {
    with_url(db, None)
}

/// Global flags with `--db` and `--database-url` as given.
fn with_url(db: Option<&str>, database_url: Option<&str>) -> GlobalArgs {
    GlobalArgs {
        db: PathBuf::from(db.unwrap_or(DEFAULT_DB)),
        database_url: database_url.map(str::to_owned),
        key_file: None,
        json: false,
        jwt_key_file: None,
        vault_key_file: None,
        receipt_key_file: None,
        bcrypt_cost: 12,
        db_is_default: db.is_none(),
    }
}

fn file(text: &str) -> FileConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn nothing_configured_serves_tollgate_db_on_localhost_8080() {
    let settings = resolve(&ServeArgs::default(), &global(None), FileConfig::default()).unwrap();
    assert_eq!(settings.listen, "127.0.0.1:8080");
    assert_eq!(settings.database_url, "sqlite://./tollgate.db");
    assert_eq!(settings.key_file, PathBuf::from("./tollgate.db.key"));
    assert_eq!(settings.jwt_key_file, PathBuf::from("./tollgate.db.jwt.key"));
    assert_eq!(settings.log_format, LogFormat::Text);
    assert_eq!(settings.serve.flush_interval, Duration::from_secs(5));
    assert_eq!(settings.server.session_retention, Duration::from_secs(30 * 86_400));
    assert!(settings.server.trusted_proxies.is_empty());
}

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let config = r#"
        listen = "0.0.0.0:9000"
        db = "/var/lib/tollgate/t.db"
        log_format = "json"
        flush_interval = "1m"
        trusted_proxies = ["10.0.0.0/8"]
        body_limit = 2048
        session_retention = "90d"
    "#;
    let from_file = resolve(&ServeArgs::default(), &global(None), file(config)).unwrap();
    assert_eq!(from_file.listen, "0.0.0.0:9000");
    assert_eq!(from_file.database_url, "sqlite:///var/lib/tollgate/t.db");
    assert_eq!(from_file.key_file, PathBuf::from("/var/lib/tollgate/t.db.key"));
    assert_eq!(from_file.log_format, LogFormat::Json);
    assert_eq!(from_file.serve.flush_interval, Duration::from_secs(60));
    assert_eq!(from_file.server.body_limit, 2048);
    assert_eq!(from_file.server.session_retention, Duration::from_secs(90 * 86_400));
    assert!(from_file.server.trusted_proxies.contains("10.1.1.1".parse().unwrap()));

    let args =
        ServeArgs { listen: Some("127.0.0.1:0".into()), flush_interval: Some("2s".into()), ..ServeArgs::default() };
    let flagged = resolve(&args, &global(Some("flagged/x.db")), file(config)).unwrap();
    assert_eq!(flagged.listen, "127.0.0.1:0");
    assert_eq!(flagged.database_url, "sqlite://flagged/x.db");
    assert_eq!(flagged.serve.flush_interval, Duration::from_secs(2));
}

#[test]
fn contradictions_and_bad_values_name_the_setting() {
    let cases = [
        (
            resolve(&ServeArgs::default(), &with_url(Some("b.db"), Some("sqlite://a.db")), FileConfig::default()),
            "database_url",
        ),
        (resolve(&ServeArgs::default(), &global(None), file("db = 'a'\ndatabase_url = 'sqlite://b'")), "database_url"),
        (resolve(&ServeArgs::default(), &global(None), file("flush_interval = '0s'")), "flush_interval"),
        (resolve(&ServeArgs::default(), &global(None), file("request_timeout = 'soon'")), "request_timeout"),
        (resolve(&ServeArgs::default(), &global(None), file("trusted_proxies = ['x']")), "trusted_proxies"),
        (resolve(&ServeArgs::default(), &global(None), file("body_limit = 1")), "body_limit"),
        (resolve(&ServeArgs::default(), &global(None), file("reservation_ttl = '30d'")), "reservation_ttl"),
        (resolve(&ServeArgs::default(), &global(None), file("usage_flush_interval = '0s'")), "usage_flush_interval"),
        (resolve(&ServeArgs::default(), &global(None), file("group_commit_window = '1s'")), "group_commit_window"),
        (resolve(&ServeArgs::default(), &global(None), file("revocation_bound = '10ms'")), "revocation_bound"),
        (resolve(&ServeArgs::default(), &global(None), file("session_retention = '0s'")), "session_retention"),
        (resolve(&ServeArgs::default(), &with_url(None, Some("sqlite::memory:")), FileConfig::default()), "key_file"),
    ];
    for (result, field) in cases {
        assert_eq!(result.unwrap_err().field, field);
    }
    assert!(toml::from_str::<FileConfig>("colour = 'red'").is_err(), "unknown keys are refused");
}

#[test]
fn receipts_are_off_unless_asked_and_their_key_file_sits_beside_the_database() {
    let off = resolve(&ServeArgs::default(), &global(None), FileConfig::default()).unwrap();
    assert_eq!(off.receipt_key_file, None);
    let on = resolve(&ServeArgs::default(), &global(None), file("receipts = true")).unwrap();
    assert_eq!(on.receipt_key_file, Some(PathBuf::from("./tollgate.db.receipt.key")));
    let named = file("receipts = true\nreceipt_key_file = \"/etc/tollgate/receipt.key\"");
    let named = resolve(&ServeArgs::default(), &global(None), named).unwrap();
    assert_eq!(named.receipt_key_file, Some(PathBuf::from("/etc/tollgate/receipt.key")));
    let args = ServeArgs { receipts: true, ..ServeArgs::default() };
    let postgres = with_url(None, Some("postgres://postgres@127.0.0.1:5432/tollgate"));
    let error = resolve(&args, &postgres, file("key_file = \"k\"\njwt_key_file = \"j\"\nvault_key_file = \"v\"")).err();
    assert_eq!(error.unwrap().field, "receipt_key_file");
}

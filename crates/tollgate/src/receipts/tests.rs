//! Receipts: sign → verify, any change or another key fails, JSON layout does not matter, key files.

use serde_json::{Value, json};
use tollgate_types::Microdollars;

use super::*;

fn content() -> ReceiptContent {
    ReceiptContent {
        kind: ReceiptKind::Settle,
        token_id: "tok_0190a1b2c3d4e5f60718293a4b5c6d7e".to_owned(),
        agent_id: None,
        reference: Some("rsv_0190a1b2c3d4e5f60718293a4b5c6d7e".to_owned()),
        request_id: Some("req-1".to_owned()),
        provider: Some("openai".to_owned()),
        model: Some("gpt-4o".to_owned()),
        input_tokens: 1200,
        output_tokens: 350,
        cost: Microdollars::from_micros(6_500),
        at: "2026-12-02T17:00:00.25Z".to_owned(),
    }
}

fn valid(verification: &Verification) -> bool {
    matches!(verification, Verification::Valid { .. })
}

#[test]
fn a_signed_receipt_verifies_under_its_key_and_no_other() {
    let signer = ReceiptSigner::ephemeral().unwrap();
    let receipt = signer.sign(content());
    assert_eq!(receipt.key_id, signer.public_key().key_id());
    assert_eq!(receipt.verify(&[signer.public_key()]), Verification::Valid { key_id: receipt.key_id.clone() });
    let other = ReceiptSigner::ephemeral().unwrap();
    assert!(!valid(&receipt.verify(&[other.public_key()])));
    // Another key under the same id (a forged key list) is still refused.
    let mut forged = receipt.clone();
    forged.key_id = other.public_key().key_id().to_owned();
    assert!(!valid(&forged.verify(&[other.public_key()])));
    assert!(!valid(&receipt.verify(&[])));
}

#[test]
fn changing_any_field_breaks_the_signature() {
    let signer = ReceiptSigner::ephemeral().unwrap();
    let keys = [signer.public_key()];
    let receipt = serde_json::to_value(signer.sign(content())).unwrap();
    let changes: [(&str, Value); 13] = [
        ("version", json!(2)),
        ("kind", json!("usage")),
        ("token_id", json!("tok_0190a1b2c3d4e5f60718293a4b5c6d7f")),
        ("agent_id", json!("agt_0190a1b2c3d4e5f60718293a4b5c6d7e")),
        ("reference", Value::Null),
        ("request_id", json!("req-2")),
        ("provider", json!("anthropic")),
        ("model", json!("gpt-4o-mini")),
        ("input_tokens", json!(1201)),
        ("output_tokens", json!(0)),
        ("cost_micros", json!(6_499)),
        ("at", json!("2026-12-02T17:00:01.25Z")),
        ("signature", json!("AAAA")),
    ];
    for (field, value) in changes {
        let mut tampered = receipt.clone();
        tampered[field] = value;
        let tampered: Receipt = serde_json::from_value(tampered).unwrap();
        assert!(!valid(&tampered.verify(&keys)), "{field} changed and it still verified");
    }
    let mut injected: Receipt = serde_json::from_value(receipt).unwrap();
    injected.model = Some("gpt-4o\ninput_tokens=1".to_owned());
    assert_eq!(injected.canonical_bytes(), None);
    assert!(!valid(&injected.verify(&keys)));
}

#[test]
fn the_canonical_form_ignores_json_key_order_and_whitespace() {
    let signer = ReceiptSigner::ephemeral().unwrap();
    let receipt = signer.sign(content());
    let object = serde_json::to_value(&receipt).unwrap();
    let mut entries: Vec<(String, Value)> = object.as_object().unwrap().clone().into_iter().collect();
    entries.reverse();
    let reordered = entries
        .iter()
        .map(|(name, value)| format!("\n  {} :  {}", serde_json::to_string(name).unwrap(), value))
        .collect::<Vec<_>>()
        .join(" ,");
    let parsed: Receipt = serde_json::from_str(&format!("{{{reordered}\n}}")).unwrap();
    assert!(valid(&parsed.verify(&[signer.public_key()])));
    let text = String::from_utf8(receipt.canonical_bytes().unwrap()).unwrap();
    let expected = format!(
        "tollgate-receipt\nversion=1\nkey_id={}\nkind=settle\ntoken_id=tok_0190a1b2c3d4e5f60718293a4b5c6d7e\n\
         agent_id=\nreference=rsv_0190a1b2c3d4e5f60718293a4b5c6d7e\nrequest_id=req-1\nprovider=openai\n\
         model=gpt-4o\ninput_tokens=1200\noutput_tokens=350\ncost_micros=6500\nat=2026-12-02T17:00:00.25Z\n",
        receipt.key_id
    );
    assert_eq!(text, expected);
}

#[test]
fn a_repeat_gets_the_receipt_the_first_request_got() {
    let signer = ReceiptSigner::ephemeral().unwrap();
    let first = signer.sign(content());
    let mut repeat = content();
    repeat.at = "2026-12-02T18:00:00Z".to_owned();
    assert_eq!(signer.sign(repeat), first);
    // Without an idempotency key nothing is remembered; Ed25519 is deterministic all the same.
    let mut plain = content();
    plain.kind = ReceiptKind::Usage;
    plain.reference = None;
    plain.request_id = None;
    assert_eq!(signer.sign(plain.clone()), signer.sign(plain));
}

#[test]
fn receipts_are_found_in_responses() {
    let signer = ReceiptSigner::ephemeral().unwrap();
    let receipt = serde_json::to_value(signer.sign(content())).unwrap();
    assert_eq!(Receipt::find_all(&receipt).unwrap().len(), 1);
    assert_eq!(Receipt::find_all(&json!({ "outcome": "recorded", "receipt": receipt })).unwrap().len(), 1);
    let batch = json!({ "events": [{ "receipt": receipt }, { "receipt": null }, { "receipt": receipt }] });
    assert_eq!(Receipt::find_all(&batch).unwrap().len(), 2);
    assert_eq!(Receipt::find_all(&json!({ "outcome": "recorded" })).unwrap_err().field, "receipt");
    let mut extra = receipt.clone();
    extra["note"] = json!("unsigned");
    assert_eq!(Receipt::find_all(&extra).unwrap_err().field, "receipt");
}

#[test]
fn key_files_are_private_reused_and_rotate_keeping_old_public_keys() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tollgate.db.receipt.key");
    let first = ReceiptSigner::load_or_create(&path).unwrap();
    assert_eq!(ReceiptSigner::load_or_create(&path).unwrap().public_key(), first.public_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let old_receipt = first.sign(content());
    let rotated = rotate_receipt_key_file(&path).unwrap();
    let rotated_again = rotate_receipt_key_file(&path).unwrap();
    let signer = ReceiptSigner::load(&path).unwrap();
    assert_eq!(signer.public_key(), rotated_again);
    assert_eq!(signer.previous_keys(), &[rotated, first.public_key()]);
    assert!(valid(&old_receipt.verify(&signer.all_public_keys())));
    assert!(!valid(&old_receipt.verify(&[signer.public_key()])));
    // Only one signing key is left in the file: the old private halves are gone.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("tollgate-receipt-key v1").count(), 1);
    assert_eq!(text.matches("tollgate-receipt-public v1").count(), 2);
    assert!(!format!("{signer:?}").contains(text.lines().last().unwrap().split(' ').nth(2).unwrap()));
}

#[test]
fn broken_key_files_are_refused_without_echoing_them() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("bad.key");
    std::fs::write(&path, "tollgate-receipt-key v1 c2VjcmV0LXNlY3JldA\n").unwrap();
    let error = ReceiptSigner::load(&path).unwrap_err().to_string();
    assert!(error.contains("not an Ed25519 PKCS#8 key") && !error.contains("c2VjcmV0"), "{error}");
    std::fs::write(&path, "").unwrap();
    assert!(ReceiptSigner::load(&path).unwrap_err().to_string().contains("no signing key"));
    assert!(ReceiptSigner::load(&directory.path().join("missing")).is_err());
    assert_eq!(ReceiptPublicKey::parse("short").unwrap_err().field, "public_key");
}

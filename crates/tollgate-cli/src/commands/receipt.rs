//! `tollgate receipt verify|key|rotate-key`: check a signed usage receipt offline, print the public
//! key customers verify with, rotate the signing key. Verify exits 0 valid, 1 invalid, 2 error.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;
use tollgate::{Receipt, ReceiptPublicKey, ReceiptSigner, Verification};

use crate::cli::GlobalArgs;
use crate::context::receipt_key_file_path;
use crate::exit::{CliError, CliResult};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Verify the receipts in FILE (a receipt, or a response holding some; `-` for standard input).
    Verify(VerifyArgs),
    /// Print the receipt public key (and the rotated-out ones) of the key file, creating it if missing.
    Key,
    /// Make a new signing key current; older keys stay as public keys, to verify old receipts.
    RotateKey,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The receipt JSON, or a settle/report/usage response; `-` reads standard input.
    file: String,
    /// The public key: its base64url text, or `@FILE` holding it (or a `GET /v1/receipts/key` answer).
    #[arg(long, conflicts_with = "server")]
    public_key: Option<String>,
    /// A tollgate server (`http://HOST:PORT`) whose `GET /v1/receipts/key` gives the keys.
    #[arg(long)]
    server: Option<String>,
}

pub(crate) async fn run(global: &GlobalArgs, command: ReceiptCommand) -> CliResult {
    match command {
        ReceiptCommand::Verify(args) => verify(global, &args),
        ReceiptCommand::Key => {
            let signer = ReceiptSigner::load_or_create(&receipt_key_file_path(global)?)?;
            show_keys(global, &signer.all_public_keys());
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::RotateKey => {
            let path = receipt_key_file_path(global)?;
            tollgate::rotate_receipt_key_file(&path)?;
            say!("rotated {}; restart servers to sign with the new key", path.display());
            show_keys(global, &ReceiptSigner::load(&path)?.all_public_keys());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_keys(global: &GlobalArgs, keys: &[ReceiptPublicKey]) {
    let views: Vec<Value> = keys
        .iter()
        .map(|key| serde_json::json!({ "key_id": key.key_id(), "public_key": key.to_base64url() }))
        .collect();
    if global.json {
        print_json(&serde_json::json!({ "algorithm": tollgate::RECEIPT_ALGORITHM, "keys": views }));
        return;
    }
    for (index, key) in keys.iter().enumerate() {
        let role = if index == 0 { "current" } else { "previous" };
        say!("{role} {} {}", key.key_id(), key.to_base64url());
    }
}

/// Any failure to get as far as checking a signature is exit 2, whatever its kind.
fn verify(global: &GlobalArgs, args: &VerifyArgs) -> CliResult {
    let error = |message: String| CliError::Invalid(message);
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|cause| error(format!("file: cannot read stdin: {cause}")))?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|cause| error(format!("file: cannot read {}: {cause}", args.file)))?
    };
    let document: Value = serde_json::from_str(&text).map_err(|_| error("file: is not JSON".to_owned()))?;
    let receipts = Receipt::find_all(&document).map_err(|invalid| error(invalid.to_string()))?;
    let keys = match (&args.public_key, &args.server) {
        (Some(key), _) => public_key_argument(key)?,
        (None, Some(server)) => keys_of_answer(&fetch_key(server)?)?,
        (None, None) => {
            let path = receipt_key_file_path(global)?;
            ReceiptSigner::load(&path).map_err(|cause| error(cause.to_string()))?.all_public_keys()
        }
    };
    let mut all_valid = true;
    for receipt in &receipts {
        let request = receipt.request_id.as_deref().or(receipt.reference.as_deref()).unwrap_or("-");
        match receipt.verify(&keys) {
            Verification::Valid { key_id } => {
                say!(
                    "valid: {} {request} cost_micros={} (key {key_id})",
                    receipt.kind.as_str(),
                    receipt.cost_micros.micros()
                );
            }
            Verification::Invalid { reason } => {
                all_valid = false;
                say!("INVALID: {} {request}: {reason}", receipt.kind.as_str());
            }
        }
    }
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `KEY` or `@FILE`; a file may hold the key text or a `GET /v1/receipts/key` answer.
fn public_key_argument(argument: &str) -> CliResult<Vec<ReceiptPublicKey>> {
    let Some(path) = argument.strip_prefix('@') else {
        return Ok(vec![ReceiptPublicKey::parse(argument)?]);
    };
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|cause| CliError::Invalid(format!("public_key: cannot read {path}: {cause}")))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(answer) if answer.is_object() => keys_of_answer(&answer),
        _ => Ok(vec![ReceiptPublicKey::parse(&text)?]),
    }
}

/// The current and previous keys of a `GET /v1/receipts/key` answer.
fn keys_of_answer(answer: &Value) -> CliResult<Vec<ReceiptPublicKey>> {
    let previous = answer.get("previous").and_then(Value::as_array).cloned().unwrap_or_default();
    std::iter::once(answer)
        .chain(previous.iter())
        .map(|entry| {
            let text = entry.get("public_key").and_then(Value::as_str).unwrap_or_default();
            Ok(ReceiptPublicKey::parse(text)?)
        })
        .collect()
}

/// `GET /v1/receipts/key` over plain HTTP/1.1 (the control API is served without TLS; put a
/// TLS-terminating proxy in front and fetch the key with any client, then use --public-key).
fn fetch_key(server: &str) -> CliResult<Value> {
    let invalid = |reason: String| CliError::Invalid(format!("server: {reason}"));
    let authority = server
        .strip_prefix("http://")
        .ok_or_else(|| invalid("must be http://HOST:PORT".to_owned()))?
        .trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return Err(invalid("must be http://HOST:PORT".to_owned()));
    }
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let mut stream =
        std::net::TcpStream::connect(&address).map_err(|cause| invalid(format!("cannot connect: {cause}")))?;
    let timeout = Some(Duration::from_secs(10));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let request = format!(
        "GET /v1/receipts/key HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_end(&mut answer))
        .map_err(|cause| invalid(format!("no answer: {cause}")))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| invalid("not an HTTP answer".to_owned()))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        return Err(invalid(format!("GET /v1/receipts/key answered {status} (does it run with --receipts?)")));
    }
    serde_json::from_str(body).map_err(|_| invalid("GET /v1/receipts/key did not answer JSON".to_owned()))
}

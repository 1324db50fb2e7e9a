//! `tollgate usage|limit|analytics|price …` end to end: the real binary over a real database file.

mod support;

use support::Shell;

#[test]
fn usage_is_recorded_priced_and_shown() {
    let shell = Shell::new();
    let (id, _) = shell.token("alice", "search");
    let record = |model: &str, input: &str, output: &str, extra: &[&str]| {
        let mut args = vec!["usage", "record", "--token-id", &id, "--provider", "openai", "--model", model];
        args.extend(["--input-tokens", input, "--output-tokens", output]);
        args.extend_from_slice(extra);
        shell.json(&args, None)
    };
    let (code, event) = record("gpt-4o-mini", "1200", "300", &[]);
    assert_eq!(code, 0);
    // 1200 × $0.15 + 300 × $0.60 per million = 360 µ$.
    assert_eq!(event["cost_micros"], 360);
    let (code, event) =
        record("gpt-4o", "10", "10", &["--cost", "0.0125", "--outcome", "error", "--latency-ms", "250"]);
    assert_eq!((code, event["cost_micros"].as_i64()), (0, Some(12_500)));

    let (code, report) = shell.json(&["usage", "show", "--owner", "alice", "--since", "1h", "--by", "model"], None);
    assert_eq!(code, 0);
    assert_eq!(report["totals"]["events"], 2);
    assert_eq!(report["totals"]["cost_micros"], 12_860);
    assert_eq!(report["totals"]["errors"], 1);
    assert_eq!(report["groups"][0]["key"], "openai/gpt-4o");
    shell.project("chat", "bob");
    let (_, other) = shell.json(&["usage", "show", "--project", "chat"], None);
    assert_eq!(other["totals"]["events"], 0);
    let (code, _) = shell.json(&["usage", "show", "--project", "no-such-project"], None);
    assert_eq!(code, 1, "an unknown project is not an empty report");

    let (code, analytics) = shell.json(&["analytics", "--hours", "24"], None);
    assert_eq!(code, 0);
    assert_eq!(analytics["total_tokens"], 1_520);
    assert_eq!(analytics["error_rate"], 0.5);
    assert_eq!(analytics["top_tokens"][0]["key"], id.as_str());
    let human = shell.run(&["analytics"], None);
    assert!(String::from_utf8_lossy(&human.stdout).contains("$0.01286"));
}

#[test]
fn bad_input_exits_2_naming_the_field() {
    let shell = Shell::new();
    let (id, _) = shell.token("alice", "search");
    let base = ["usage", "record", "--token-id", id.as_str(), "--provider", "openai"];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let cases: [(Vec<&str>, &str); 8] = [
        (with(&["--model", "gpt-4o", "--input-tokens", "-5"]), "input_tokens: must not be negative"),
        (with(&["--model", "gpt-4o", "--output-tokens", "99999999999999999999999"]), "output_tokens: must be at most"),
        (with(&["--model", ""]), "model: must not be empty"),
        (with(&["--model", "gpt-4o", "--cost", "1e-3"]), "cost: must be an amount"),
        (with(&["--model", "gpt-4o", "--cost", "-1"]), "cost: must not be negative"),
        (
            vec!["limit", "set", "--owner", "alice", "--cost-per-month", "50.0000001"],
            "cost_per_month: has more than six",
        ),
        (
            vec!["limit", "set", "--owner", "alice", "--requests-per-day", "-1"],
            "requests_per_day: must not be negative",
        ),
        (vec!["limit", "remove", "--owner", "alice", "--limit", "requests_per_fortnight"], "window: must be one of"),
    ];
    for (args, expected) in cases {
        let message = shell.invalid(&args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}

#[test]
fn limits_are_set_listed_enforced_and_removed() {
    let shell = Shell::new();
    let (id, secret) = shell.token("alice", "search");
    let (code, set) = shell
        .json(&["limit", "set", "--token-id", &id, "--requests-per-minute", "2", "--cost-per-month", "50.00"], None);
    assert_eq!(code, 0, "{set}");
    let maxima: Vec<_> = set["limits"].as_array().unwrap().iter().map(|limit| limit["max"].as_u64().unwrap()).collect();
    assert_eq!(maxima, [2, 50_000_000]);
    let (code, _) = shell.json(&["limit", "set", "--project", "search", "--tokens-per-day", "1000", "--shadow"], None);
    assert_eq!(code, 0);

    let verify = || shell.json(&["token", "verify"], Some(&secret));
    assert_eq!(verify().0, 0);
    assert_eq!(verify().0, 0);
    let (code, refused) = verify();
    assert_eq!((code, refused["code"].as_str()), (1, Some("quota_exceeded")));
    assert_eq!(refused["limit"], "requests_per_minute");
    assert!(refused["resets_at"].as_str().is_some_and(|at| at.ends_with(":00Z")), "{refused}");

    let (code, listed) = shell.json(&["limit", "list"], None);
    assert_eq!(code, 0);
    let limits = listed["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 3);
    let requests = limits.iter().find(|limit| limit["metric"] == "requests").unwrap();
    assert_eq!((requests["used"].as_i64(), requests["shadow"].as_bool()), (Some(2), Some(false)));
    let tokens = limits.iter().find(|limit| limit["metric"] == "tokens").unwrap();
    assert_eq!(tokens["shadow"], true);

    let (code, removed) = shell.json(&["limit", "remove", "--token-id", &id, "--limit", "requests_per_minute"], None);
    assert_eq!((code, removed["removed"].as_array().map(Vec::len)), (0, Some(1)));
    assert_eq!(verify().0, 0, "no request limit any more");
    let missing = shell.run(&["limit", "remove", "--token-id", &id, "--limit", "requests_per_minute"], None);
    assert_eq!(missing.status.code(), Some(1), "removing a missing limit fails");
    let (code, removed) = shell.json(&["limit", "remove", "--project", "search", "--all"], None);
    assert_eq!((code, removed["removed"].as_array().map(Vec::len)), (0, Some(1)));
}

#[test]
fn rate_limits_need_a_token_and_refuse_with_retry_after() {
    let shell = Shell::new();
    let (id, secret) = shell.token("alice", "search");
    assert!(shell.invalid(&["limit", "set", "--owner", "alice", "--rate-per-minute", "5"]).contains("rate_per_minute"));
    let (code, set) = shell.json(&["limit", "set", "--token-id", &id, "--rate-per-minute", "1", "--burst", "1"], None);
    assert_eq!(code, 0, "{set}");
    assert_eq!(set["rate_limits"][0]["requests_per_minute"], 1);
    // Each command is a new process with a fresh in-process limiter: the burst applies per process.
    assert_eq!(shell.json(&["token", "verify"], Some(&secret)).0, 0);
    let (code, _) = shell.json(&["limit", "remove", "--token-id", &id, "--rate"], None);
    assert_eq!(code, 0);
    let (_, listed) = shell.json(&["limit", "list", "--token-id", &id], None);
    assert_eq!(listed["rate_limits"].as_array().map(Vec::len), Some(0));
}

#[test]
fn prices_are_listed_set_and_removed() {
    let shell = Shell::new();
    let (code, prices) = shell.json(&["price", "list", "--provider", "openai"], None);
    assert_eq!(code, 0);
    let gpt_4o = prices.as_array().unwrap().iter().find(|price| price["model"] == "gpt-4o").unwrap();
    assert_eq!(
        (gpt_4o["input_per_million_micros"].as_i64(), gpt_4o["source"].as_str()),
        (Some(2_500_000), Some("shipped"))
    );
    let (code, set) = shell
        .json(&["price", "set", "--provider", "openai", "--model", "gpt-4o", "--input", "2", "--output", "8"], None);
    assert_eq!((code, set[0]["source"].as_str()), (0, Some("stored")));
    assert!(
        shell
            .invalid(&["price", "set", "--provider", "openai", "--model", "x", "--input", "-2", "--output", "1"])
            .contains("input: must not be negative")
    );
    let (code, removed) = shell.json(&["price", "remove", "--provider", "openai", "--model", "gpt-4o"], None);
    assert_eq!((code, removed["in_effect"]["source"].as_str()), (0, Some("shipped")));
}

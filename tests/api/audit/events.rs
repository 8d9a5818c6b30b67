//! Reading the audit log: the structured events of `tracing`'s `fmt`
//! lines, and the check that each audited action left exactly one.

use std::collections::BTreeMap;

use crate::db;

/// One structured event: its `event=` name, every `key=value` field of the
/// line (values unquoted) and where it was captured.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) name: String,
    fields: BTreeMap<String, String>,
    source: String,
    line: String,
}

impl Event {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The fields of a log line: the top-level members of a JSON line
/// (`log_format = "json"`; strings as they are, other values as JSON), or
/// the `key=value` fields of a tracing-subscriber `fmt` line, where quoted
/// values (`event="login_failed"`) are unescaped and bare values end at a
/// space.
pub(super) fn fields_of(line: &str) -> BTreeMap<String, String> {
    if let Ok(serde_json::Value::Object(members)) = serde_json::from_str(line) {
        return members
            .into_iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => (key, text),
                other => (key, other.to_string()),
            })
            .collect();
    }
    let bytes = line.as_bytes();
    let mut fields = BTreeMap::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_.".contains(&bytes[i])) {
            i += 1;
        }
        if i > start && i < bytes.len() && bytes[i] == b'=' {
            let key = line[start..i].to_owned();
            i += 1;
            let mut value = Vec::new();
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if i + 1 < bytes.len() => {
                            value.push(bytes[i + 1]);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        byte => {
                            value.push(byte);
                            i += 1;
                        }
                    }
                }
            } else {
                while i < bytes.len() && bytes[i] != b' ' {
                    value.push(bytes[i]);
                    i += 1;
                }
            }
            fields
                .entry(key)
                .or_insert_with(|| String::from_utf8_lossy(&value).into_owned());
        } else {
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
        }
    }
    fields
}

/// Every event in `lines`.
pub(super) fn events_in(source: &str, lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|line| {
            let fields = fields_of(line);
            let name = fields.get("event")?.clone();
            Some(Event {
                name,
                fields,
                source: source.to_owned(),
                line: line.clone(),
            })
        })
        .collect()
}

#[test]
fn the_field_parser_reads_tracing_fmt_lines() {
    let line = r#"2026-01-01T00:00:00.000000Z  WARN jwtd::keys::lifecycle: event="key_revoked" kid="a\"b" replaces=Some("x") tokens=3"#;
    let fields = fields_of(line);
    assert_eq!(fields["event"], "key_revoked");
    assert_eq!(fields["kid"], "a\"b");
    assert_eq!(fields["replaces"], "Some(\"x\")");
    assert_eq!(fields["tokens"], "3");
    assert!(fields_of("INFO jwtd::cli: jwtd listening addr=127.0.0.1:1").contains_key("addr"));
}

/// Counts of what the scenario did, to compare with the events.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub(super) logins_ok: usize,
    pub(super) logins_failed: usize,
    pub(super) logins_throttled: usize,
    pub(super) reuses: usize,
}

/// Exactly one event per audited action.
pub(super) fn check_events(
    server_lines: &[String],
    cli_lines: &[(String, String)],
    keys: &[db::KeyRow],
    done: &Done,
    problems: &mut Vec<String>,
) {
    let mut events = events_in("`jwtd serve`", server_lines);
    for (source, line) in cli_lines {
        events.extend(events_in(source, std::slice::from_ref(line)));
    }
    let named = |name: &str| -> Vec<&Event> { events.iter().filter(|e| e.name == name).collect() };
    let mut expect_count = |name: &str, want: usize| {
        let got = named(name);
        if got.len() != want {
            problems.push(format!(
                "{want} `{name}` event(s) expected, {} found: {:#?}",
                got.len(),
                got.iter().map(|e| &e.line).collect::<Vec<_>>()
            ));
        }
    };
    expect_count("login_succeeded", done.logins_ok);
    expect_count("login_failed", done.logins_failed);
    expect_count("login_throttled", done.logins_throttled);
    expect_count("refresh_reuse_detected", done.reuses);
    expect_count("family_revoked", done.reuses);
    expect_count("logout_all", 2);

    for event in named("login_succeeded") {
        for field in ["user_id", "username"] {
            if event.field(field).is_none() {
                problems.push(format!("login_succeeded without `{field}`: {}", event.line));
            }
        }
    }
    for event in named("login_failed")
        .into_iter()
        .chain(named("login_throttled"))
    {
        if event.field("username").is_none() {
            problems.push(format!("{} without `username`: {}", event.name, event.line));
        }
    }
    let reuse_families: Vec<_> = named("refresh_reuse_detected")
        .iter()
        .filter_map(|e| e.field("family"))
        .collect();
    let revoked_families: Vec<_> = named("family_revoked")
        .iter()
        .filter_map(|e| e.field("family"))
        .collect();
    if reuse_families.is_empty() || reuse_families != revoked_families {
        problems.push(format!(
            "refresh_reuse_detected and family_revoked name different families: {reuse_families:?} / {revoked_families:?}"
        ));
    }
    let mut vias: Vec<_> = named("logout_all")
        .iter()
        .map(|e| {
            (
                e.field("via"),
                e.field("user_id").is_some(),
                e.source.clone(),
            )
        })
        .collect();
    vias.sort();
    let want_vias = vec![
        (
            Some("cli"),
            true,
            "`jwtd users logout-all alice`".to_owned(),
        ),
        (Some("http"), true, "`jwtd serve`".to_owned()),
    ];
    if vias != want_vias {
        problems.push(format!(
            "logout_all events: {vias:?}, expected {want_vias:?}"
        ));
    }

    // Keys: the database is the record of what happened to each key.
    let created = named("key_created");
    if created.len() != keys.len() {
        problems.push(format!(
            "{} keys exist but {} `key_created` events were logged",
            keys.len(),
            created.len()
        ));
    }
    let created_kids: Vec<_> = created.iter().filter_map(|e| e.field("kid")).collect();
    if created_kids.len() != created.len() {
        problems.push(format!(
            "`key_created` events do not name the key (no `kid` field), so no audit record says which key was made: {:#?}",
            created.iter().map(|e| &e.line).collect::<Vec<_>>()
        ));
    } else {
        per_kid(
            problems,
            "key_created",
            &created,
            keys.iter().map(|k| &k.kid),
        );
    }
    // A key created active (the very first one) has its `key_created`
    // event; every other key that ever signed has one `key_activated`.
    let first = keys.iter().find(|k| k.activated_at == Some(k.created_at));
    let created_active: Vec<String> = created
        .iter()
        .filter(|e| e.field("state") == Some("active"))
        .filter_map(|e| {
            e.field("kid")
                .map(str::to_owned)
                .or_else(|| first.map(|k| k.kid.clone()))
        })
        .collect();
    let want_activated: Vec<&String> = keys
        .iter()
        .filter(|k| k.activated_at.is_some() && !created_active.contains(&k.kid))
        .map(|k| &k.kid)
        .collect();
    per_kid(
        problems,
        "key_activated",
        &named("key_activated"),
        want_activated.into_iter(),
    );
    per_kid(
        problems,
        "key_retired",
        &named("key_retired"),
        keys.iter().filter(|k| k.state == "retired").map(|k| &k.kid),
    );
    per_kid(
        problems,
        "key_revoked",
        &named("key_revoked"),
        keys.iter().filter(|k| k.state == "revoked").map(|k| &k.kid),
    );
    for (name, at_least) in [("key_activated", 2), ("key_retired", 1), ("key_revoked", 1)] {
        if named(name).len() < at_least {
            problems.push(format!(
                "the scenario should have produced at least {at_least} `{name}` event(s)"
            ));
        }
    }
}

/// Exactly one `name` event for each kid of `want`, and none for others.
fn per_kid<'a>(
    problems: &mut Vec<String>,
    name: &str,
    events: &[&Event],
    want: impl Iterator<Item = &'a String>,
) {
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for event in events {
        match event.field("kid") {
            Some(kid) => *got.entry(kid.to_owned()).or_default() += 1,
            None => problems.push(format!("`{name}` without `kid`: {}", event.line)),
        }
    }
    let want: BTreeMap<String, usize> = want.map(|kid| (kid.clone(), 1)).collect();
    if got != want {
        problems.push(format!(
            "`{name}` events per kid {got:?}, expected one for each of {:?}",
            want.keys().collect::<Vec<_>>()
        ));
    }
}

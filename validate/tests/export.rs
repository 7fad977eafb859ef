//! Export: deterministic, up to date with the committed file, and the
//! committed mocks, once compiled, export the same file (round trip).
//!
//! Regenerate the committed file with
//! `PROMISCUOUS_WRITE_MOCKS=1 cargo test -p promiscuous-validate --test export`.

mod common;

/// The committed export, compiled: mock publishers.
#[path = "fixtures/crowdtap.rs"]
mod crowdtap;

/// The same file, included as items.
mod included {
    include!("fixtures/crowdtap.rs");
}

use promiscuous_validate::{
    export_mocks, mocks_app, mocks_source, published_definitions, publishers, Problem, Publishers,
};

#[test]
fn committed_mocks_are_up_to_date() {
    let report = Publishers::new(common::MOCKS)
        .unchecked(["Audit"])
        .check()
        .unwrap();
    assert_eq!(report.subject, "publishers");
    assert_eq!(
        report.checked,
        [
            "Address",
            "Admin",
            "BankAccount",
            "Click",
            "Legacy",
            "Member",
            "User",
            "UserEvent",
            "UserGroup"
        ]
    );
    assert_eq!(report.not_instantiated, ["Audit"]);
    assert!(report.to_string().contains(
        "not instantiated, accepted unchecked (derive or implement Default to check them): Audit"
    ));
}

// The one-line form: the same check, as a generated test.
promiscuous_validate::contract_tests!(
    publishers: common::APP,
    mocks: "tests/fixtures/crowdtap.rs",
    unchecked: ["Audit"],
);

#[test]
fn a_model_that_cannot_be_instantiated_fails_unless_accepted() {
    let error = publishers(common::MOCKS).unwrap_err();
    assert_eq!(
        error.problems,
        [Problem::NotInstantiated {
            model: "Audit".into()
        }]
    );
    let message = error.to_string();
    assert!(
        message.contains("Audit was not instantiated, so its published attributes were not checked: derive or implement Default on it"),
        "{message}"
    );
    assert!(message.contains(".unchecked([\"Audit\"])"), "{message}");
}

#[test]
fn export_is_deterministic() {
    let first = export_mocks(common::APP);
    let second = export_mocks(common::APP);
    assert_eq!(first, second);
    // Independent of the order definitions are given in.
    let mut reversed = published_definitions();
    reversed.reverse();
    assert_eq!(mocks_source(common::APP, &reversed), first);
    assert!(!first.contains("generated at"), "no timestamps");
}

#[test]
fn compiled_mocks_export_the_same_file() {
    let committed = std::fs::read_to_string(common::MOCKS).unwrap();
    // The mocks are linked into this binary, but left out of the export.
    assert!(published_definitions()
        .iter()
        .all(|def| !crowdtap::definitions()
            .iter()
            .any(|mock| std::ptr::eq(*mock, *def))));
    assert_eq!(export_mocks(common::APP), committed);
    // Byte-identical round trip: the compiled mocks export the same file.
    assert_eq!(
        mocks_source(crowdtap::APP, &crowdtap::definitions()),
        committed
    );
    assert_eq!(mocks_app(&committed).as_deref(), Some(crowdtap::APP));
}

#[test]
fn mocks_have_the_real_definitions() {
    use promiscuous::Publish;
    let real = <common::Member as Publish>::definition();
    let mock = <crowdtap::Member as Publish>::definition();
    assert_eq!(mock.types(), real.types());
    assert_eq!(mock.endpoint("mailer"), real.endpoint(common::APP));
    let names = |def: &promiscuous::core::model::PublisherDef| {
        def.all_attributes()
            .iter()
            .map(|a| (a.name, a.json_type))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(mock), names(real));
    assert_eq!(
        names(mock),
        [
            ("name", "string"),
            ("email", "string"),
            ("group_id", "integer?"),
            ("display_name", "any"),
            ("state", "string"),
            ("points", "integer"),
            ("level", "any"),
        ]
    );
    let account = <crowdtap::BankAccount as Publish>::definition();
    assert_eq!(account.model, "BankAccount");
    assert_eq!(account.id_kind, "string");
    assert!(<crowdtap::UserEvent as Publish>::definition().ephemeral);
    assert_eq!(
        <crowdtap::UserEvent as Publish>::definition().id_kind,
        "none"
    );
}

#[test]
fn the_file_reads_like_the_definitions() {
    let text = export_mocks(common::APP);
    for expected in [
        "pub const APP: &str = \"crowdtap\";",
        "#[publish(to = \"crowdtap/user\", mock)]\npub struct User {",
        "#[publish(parent = User, mock)]\npub struct Member {",
        "    /// `name` (string), inherited from `User`.\n    pub name: String,",
        "    /// `state` (string).\n    #[publish]\n    pub state: String,",
        "pub struct Admin {",
        "#[publish(to = \"crowdtap/user_group\", mock)]",
        "    pub r#type: String,",
        "    pub settings: ::serde_json::Map<String, ::serde_json::Value>,",
        "    pub owners: Option<Vec<::serde_json::Value>>,",
        "    pub score: f64,",
        "#[publish(to = \"crowdtap/account\", mock)]\npub struct BankAccount {",
        "    #[publish(embeds)]\n    pub addresses: Vec<Address>,",
        "    #[publish(embeds)]\n    pub billing: Option<Address>,",
        "    #[publish(embeds)]\n    pub home: Address,",
        "#[publish(to = \"crowdtap/user_event\", ephemeral, mock)]\npub struct UserEvent {\n    /// `user_id` (integer).",
        "    /// The id (integer), if any.\n    pub id: Option<i64>,",
        "    /// `group_id` (integer or null).\n    #[publish]\n    pub group_id: Option<i64>,",
        "    pub code: ::serde_json::Value,",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("password_digest"));
    // `cargo fmt` in the including crate leaves every item alone.
    let items = text.lines().filter(|l| l.starts_with("pub ")).count();
    assert_eq!(
        text.matches("#[rustfmt::skip]\n#[allow(dead_code)]\n")
            .count(),
        items
    );
    // Roots are followed by their subclasses.
    let at = |s: &str| text.find(s).unwrap();
    assert!(at("pub struct User {") < at("pub struct Admin {"));
    assert!(at("pub struct Admin {") < at("pub struct Member {"));
    assert!(at("pub struct Member {") < at("pub struct UserEvent {"));
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("promiscuous-validate-{}", std::process::id()))
        .join(name)
}

#[test]
fn a_stale_file_fails_with_a_diff() {
    let path = temp_path("stale/crowdtap.rs");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let committed = export_mocks(common::APP);
    let stale = committed
        .replace("    pub email: String,\n", "    pub e_mail: String,\n")
        .replace("    pub points: i64,\n", "");
    std::fs::write(&path, stale).unwrap();

    let error = Publishers::new(&path)
        .unchecked(["Audit"])
        .rewrite(false)
        .check()
        .unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error}");
    let Problem::MocksStale { diff, .. } = &error.problems[0] else {
        panic!("expected a stale file: {error}");
    };
    assert!(
        diff.contains("-    pub e_mail: String,\n+    pub email: String,"),
        "{diff}"
    );
    assert!(diff.contains("+    pub points: i64,"), "{diff}");
    assert!(
        diff.contains("+++ what this binary publishes now"),
        "{diff}"
    );
    let message = error.to_string();
    assert!(message.starts_with("validate::publishers found 1 problem:\n1. the mocks file "));
    assert!(message.contains("is out of date: it is not what this binary publishes now"));
    assert!(message.contains("PROMISCUOUS_WRITE_MOCKS=1"));
    // Debug is Display, so `.unwrap()` prints it readably.
    assert_eq!(format!("{error:?}"), message);
}

#[test]
fn a_missing_file_fails_then_can_be_written() {
    let path = temp_path("missing/crowdtap.rs");
    let _ = std::fs::remove_file(&path);
    let error = Publishers::new(&path)
        .app(common::APP)
        .unchecked(["Audit"])
        .rewrite(false)
        .check()
        .unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::MocksUnreadable { .. }]),
        "{error}"
    );
    assert!(error.to_string().contains("cannot read the mocks file"));
    assert!(error.to_string().contains("PROMISCUOUS_WRITE_MOCKS=1"));

    let report = Publishers::new(&path)
        .app(common::APP)
        .unchecked(["Audit"])
        .rewrite(true)
        .check()
        .unwrap();
    assert!(report.notes[0].starts_with("rewrote "), "{report}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        export_mocks(common::APP)
    );
    Publishers::new(&path)
        .unchecked(["Audit"])
        .rewrite(false)
        .check()
        .unwrap();

    // Without `.app`, the app comes from the publishers' `to` endpoints.
    std::fs::remove_file(&path).unwrap();
    let report = Publishers::new(&path)
        .unchecked(["Audit"])
        .rewrite(true)
        .check()
        .unwrap();
    assert!(report.notes[0].starts_with("rewrote "), "{report}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        export_mocks(common::APP)
    );
}

#[test]
fn a_file_without_app_cannot_be_checked() {
    if std::env::var("PROMISCUOUS_APP").is_ok() {
        return; // the app would come from the environment
    }
    use promiscuous::Publish;
    let path = temp_path("no-app/crowdtap.rs");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "// nothing\n").unwrap();
    // UserEvent has no `to`, so its endpoint names no app.
    let error = Publishers::new(&path)
        .definitions(&[<common::UserEvent as Publish>::definition()])
        .rewrite(false)
        .check()
        .unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::UnknownApp { .. }]),
        "{error}"
    );
    assert!(error.to_string().contains(".app(\"name\")"));
}

#[test]
fn a_first_run_without_app_says_to_name_the_app() {
    if std::env::var("PROMISCUOUS_APP").is_ok() {
        return; // the app would come from the environment
    }
    use promiscuous::Publish;
    let path = temp_path("first-run/crowdtap.rs");
    let _ = std::fs::remove_file(&path);
    // Asked to write a file that does not exist yet, for publishers whose
    // endpoints name no app: the problem is the app, not the missing file.
    let error = Publishers::new(&path)
        .definitions(&[<common::UserEvent as Publish>::definition()])
        .rewrite(true)
        .check()
        .unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::UnknownApp { .. }]),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("PROMISCUOUS_APP"), "{message}");
    assert!(!message.contains("cannot read the mocks file"), "{message}");
}

#[test]
fn selected_definitions_bring_their_ancestors_and_embedded_models() {
    use promiscuous::Publish;
    let text = mocks_source(
        common::APP,
        &[
            <common::Member as Publish>::definition(),
            <common::Account as Publish>::definition(),
        ],
    );
    let structs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pub struct "))
        .collect();
    assert_eq!(
        structs,
        ["Address {", "BankAccount {", "User {", "Member {"],
        "{text}"
    );
}

#[test]
fn subscribers_need_subscribers_linked() {
    // No subscriber is linked into this binary.
    let error =
        promiscuous_validate::subscribers(&crowdtap::definitions(), crowdtap::APP).unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::NothingSubscribed]),
        "{error}"
    );
    assert!(error.to_string().contains("`use my_app as _;`"));
}

//! Contract tests of the crowdtap publisher: `mocks/crowdtap.rs` is what this
//! app publishes, and every published attribute can be produced.
//!
//! After changing a published model, regenerate the mocks with
//!
//! ```sh
//! PROMISCUOUS_WRITE_MOCKS=1 cargo test -p publisher-app
//! ```
//!
//! commit `mocks/crowdtap.rs`, and run the subscribers' tests against it.

/// The mocks and factories this app ships to its subscribers, compiled here.
#[path = "../mocks/mod.rs"]
mod mocks;

use promiscuous::validate;
// Links the app's models into this test binary: the linker leaves out a
// crate that is not referenced, and its definitions with it.
use publisher_app as _;

/// The committed export.
const MOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mocks/crowdtap.rs");

#[test]
fn mocks_are_up_to_date() {
    assert_eq!(publisher_app::APP, mocks::APP);
    let report = validate::publishers(MOCKS).unwrap();
    assert_eq!(
        report.checked,
        ["Admin", "Member", "User", "UserEvent", "UserGroup"]
    );
    assert!(report.not_instantiated.is_empty());
}

#[test]
fn mocks_describe_the_published_models() {
    use promiscuous::Publish;
    let real = <publisher_app::Member as Publish>::definition();
    let mock = <mocks::Member as Publish>::definition();
    assert_eq!(mock.types(), ["Member", "User"]);
    assert_eq!(mock.endpoint("anything"), real.endpoint(publisher_app::APP));
    let names = |def: &promiscuous::core::model::PublisherDef| {
        def.all_attributes()
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(mock), names(real));
}

#[test]
fn factories_describe_what_is_published() {
    // The factory's member publishes what a real member with the same data does.
    let factory = mocks::factories::member();
    let real = publisher_app::Member {
        id: factory.id,
        name: factory.name.clone(),
        email: factory.email.clone(),
        state: factory.state.clone(),
        points: 0,
        ..Default::default()
    };
    assert_eq!(
        promiscuous::core::model::published_attributes(&factory).unwrap(),
        promiscuous::core::model::published_attributes(&real).unwrap()
    );
}

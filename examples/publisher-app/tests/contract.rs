//! The mocks and factories crowdtap ships to its subscribers describe what it
//! publishes (`tests/mocks.rs` keeps the mocks file up to date).

/// The mocks and factories this app ships to its subscribers, compiled here.
#[path = "../mocks/mod.rs"]
mod mocks;

#[test]
fn mocks_describe_the_published_models() {
    use promiscuous::Publish;
    let real = <publisher_app::user::Model as Publish>::definition();
    let mock = <mocks::User as Publish>::definition();
    assert_eq!(mock.types(), ["User"]);
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
    // The factory's user publishes what a real user with the same data does.
    let factory = mocks::factories::user();
    let real = publisher_app::user::Model {
        id: factory.id,
        name: factory.name.clone(),
        email: factory.email.clone(),
        state: factory.state.clone(),
        points: 0,
        password_digest: "secret".into(),
    };
    assert_eq!(
        promiscuous::core::model::published_attributes(&factory).unwrap(),
        promiscuous::core::model::published_attributes(&real).unwrap()
    );
}

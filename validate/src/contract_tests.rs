//! `contract_tests!`: the contract tests of an app in one line.

/// Generates the contract test of a publisher app or of a subscriber app.
///
/// **Publisher app**, in a test file (`tests/contract.rs`) or under
/// `#[cfg(test)]` in the crate itself:
///
/// ```
/// # mod my_app { pub const APP: &str = "crowdtap"; }
/// # use promiscuous_validate as validate;
/// validate::contract_tests!(publishers: my_app::APP, mocks: "mocks/crowdtap.rs");
/// # fn main() {}
/// ```
///
/// generates `#[test] fn promiscuous_publishers_match_their_mocks`, which runs
/// [`Publishers`](crate::Publishers) on the file (relative to the package's
/// `Cargo.toml`) for that app: the first run with `PROMISCUOUS_WRITE_MOCKS=1`
/// writes it, later runs fail with a diff when it is out of date. Naming the
/// app from the crate (`my_app::APP`) also links the app's models into the
/// test binary. Models that cannot be instantiated can be accepted unchecked:
/// `contract_tests!(publishers: my_app::APP, mocks: "…", unchecked: ["Audit"])`.
///
/// **Subscriber app**, next to the included mocks:
///
/// ```
/// # use promiscuous_validate as validate;
/// # /*
/// #[path = "../../publisher-app/mocks/mod.rs"]
/// mod crowdtap;
/// use my_subscriber_app as _; // links the subscribers (an integration test only)
/// # */
/// # mod crowdtap {
/// #     pub const APP: &str = "crowdtap";
/// #     pub fn definitions() -> Vec<&'static promiscuous::core::model::PublisherDef> { Vec::new() }
/// # }
/// validate::contract_tests!(subscribers: crowdtap);
/// # fn main() {}
/// ```
///
/// generates `#[test] fn promiscuous_subscribers_match_what_is_published`,
/// which runs [`subscribers`](crate::subscribers) against the module's
/// `definitions()` and `APP`.
///
/// Either test prints its report (`cargo test -- --nocapture` shows it) and
/// panics with every problem found.
#[macro_export]
macro_rules! contract_tests {
    (publishers: $app:expr, mocks: $path:literal $(, unchecked: [$($model:literal),* $(,)?])? $(,)?) => {
        #[::core::prelude::v1::test]
        fn promiscuous_publishers_match_their_mocks() {
            let path = ::std::path::Path::new(::core::env!("CARGO_MANIFEST_DIR")).join($path);
            let check = $crate::Publishers::new(&path)
                .app($app)
                $(.unchecked([$($model),*]))?
                .check();
            match check {
                ::core::result::Result::Ok(report) => ::std::println!("{report}"),
                ::core::result::Result::Err(error) => ::core::panic!("{error}"),
            }
        }
    };
    (subscribers: $mocks:ident $(,)?) => {
        #[::core::prelude::v1::test]
        fn promiscuous_subscribers_match_what_is_published() {
            match $crate::subscribers(&$mocks::definitions(), $mocks::APP) {
                ::core::result::Result::Ok(report) => ::std::println!("{report}"),
                ::core::result::Result::Err(error) => ::core::panic!("{error}"),
            }
        }
    };
}

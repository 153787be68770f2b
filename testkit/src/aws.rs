//! The AWS emulators' environment (LocalStack and DynamoDB Local, as `infra/test.sh` starts
//! them): what a test checks before it provisions, and a name prefix of its own.

/// Panics, naming the variable, unless every one of `vars` is set.
pub fn require_emulators(vars: &[&str]) {
    for var in vars {
        assert!(
            std::env::var(var).is_ok(),
            "{var} is not set: these tests need LocalStack and DynamoDB Local; run them through infra/test.sh"
        );
    }
}

/// A fresh resource prefix, `{first}` and eight lowercase letters or digits and `-`: tests
/// that provision side by side never share a queue or table.
pub fn fresh_prefix(first: char) -> String {
    format!(
        "{first}{}-",
        (0..8)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    )
}

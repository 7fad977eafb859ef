//! Endpoints (`app/model`) and the patterns subscribers bind (`*/model`).

use std::fmt;

/// Where a publisher sends a model's operations: `app/model`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    app: String,
    model: String,
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Endpoint {
    /// Parses `app/model`; both parts are non-empty `[A-Za-z0-9_-]+`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((app, model)) if valid_segment(app) && valid_segment(model) => Ok(Self {
                app: app.to_owned(),
                model: model.to_owned(),
            }),
            _ => Err(format!(
                "endpoint {text:?} must be `app/model`, each part made of letters, digits, `_` or `-`"
            )),
        }
    }

    /// The publishing application.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The model part.
    pub fn model(&self) -> &str {
        &self.model
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.model)
    }
}

/// What a subscriber binds: `app/model`, `*/model` (any app), `app/*` or `*/*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointPattern {
    app: Option<String>,
    model: Option<String>,
}

impl EndpointPattern {
    /// Parses a pattern; `*` stands for any app or any model.
    pub fn parse(text: &str) -> Result<Self, String> {
        let part = |segment: &str| -> Result<Option<String>, ()> {
            if segment == "*" {
                Ok(None)
            } else if valid_segment(segment) {
                Ok(Some(segment.to_owned()))
            } else {
                Err(())
            }
        };
        let parsed = text
            .split_once('/')
            .ok_or(())
            .and_then(|(app, model)| Ok((part(app)?, part(model)?)));
        match parsed {
            Ok((app, model)) => Ok(Self { app, model }),
            Err(()) => Err(format!(
                "endpoint pattern {text:?} must be `app/model` where either part may be `*`"
            )),
        }
    }

    /// Whether the endpoint matches this pattern.
    pub fn matches(&self, endpoint: &Endpoint) -> bool {
        self.app.as_deref().is_none_or(|app| app == endpoint.app)
            && self
                .model
                .as_deref()
                .is_none_or(|model| model == endpoint.model)
    }

    /// Whether the endpoint text (`app/model`) matches; false when it does not parse.
    pub fn matches_str(&self, endpoint: &str) -> bool {
        Endpoint::parse(endpoint).is_ok_and(|e| self.matches(&e))
    }

    /// The app part, `None` for `*`.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The model part, `None` for `*`.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

impl fmt::Display for EndpointPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.app.as_deref().unwrap_or("*"),
            self.model.as_deref().unwrap_or("*")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_any_app_or_model() {
        let user = Endpoint::parse("crowdtap/user").unwrap();
        assert!(EndpointPattern::parse("*/user").unwrap().matches(&user));
        assert!(EndpointPattern::parse("crowdtap/*").unwrap().matches(&user));
        assert!(EndpointPattern::parse("crowdtap/user")
            .unwrap()
            .matches(&user));
        assert!(!EndpointPattern::parse("*/member").unwrap().matches(&user));
        assert!(!EndpointPattern::parse("other/user").unwrap().matches(&user));
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_rule() {
        for bad in ["user", "a/b/c", "/user", "app/", "a.b/c", "a/b c"] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(err.contains("app/model"), "{err}");
        }
        assert!(EndpointPattern::parse("**/x").is_err());
    }
}

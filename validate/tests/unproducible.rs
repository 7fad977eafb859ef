//! `validate::publishers`: published attributes that cannot be produced.
//!
//! Every publisher of this binary is broken in its own way, except `Person`;
//! the validator reports all of them at once.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use promiscuous::Publish;
use promiscuous_validate::{publishers, write_mocks, Problem, ValidationError};
use serde::{Deserialize, Serialize, Serializer};

/// Valid: a virtual attribute computed from fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/person", virtual(full_name))]
pub struct Person {
    pub id: i64,
    #[publish]
    pub first_name: String,
    #[publish]
    pub last_name: String,
}

impl Person {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A subclass that inherits the virtual attribute `full_name` without
/// declaring it again nor having the field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = Person)]
pub struct Student {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    #[publish]
    pub grade: u8,
}

/// A published field renamed by serde.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/course")]
pub struct Course {
    pub id: i64,
    #[publish]
    #[serde(rename = "title")]
    pub name: String,
}

/// A published field skipped by serde when empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/teacher")]
pub struct Teacher {
    pub id: i64,
    #[publish]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

/// A virtual attribute that panics on a default instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/classroom", virtual(first_seat))]
pub struct Classroom {
    pub id: i64,
    pub seats: Vec<String>,
}

impl Classroom {
    pub fn first_seat(&self) -> String {
        self.seats[0].clone()
    }
}

/// A virtual attribute that cannot be serialised as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/timetable", virtual(slots))]
pub struct Timetable {
    pub id: i64,
}

impl Timetable {
    pub fn slots(&self) -> BTreeMap<(u8, u8), String> {
        BTreeMap::from([((1, 9), "maths".to_owned())])
    }
}

/// A type named like a JSON object that serialises as a string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Map(String);

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A field whose JSON type is guessed wrong (`object`), so the mocks would lie.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/campus")]
pub struct Campus {
    pub id: i64,
    #[publish]
    pub location: Map,
}

/// An embedded model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/place")]
pub struct Place {
    pub id: i64,
    #[publish]
    pub city: String,
}

/// Valid: embeds places.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/school")]
pub struct School {
    pub id: i64,
    #[publish(embeds)]
    pub places: Vec<Place>,
}

/// A subclass inheriting the embedded `places` as a plain field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = School)]
pub struct College {
    pub id: i64,
    pub places: Vec<Place>,
}

/// Valid: a subclass declaring the inherited embedded attribute again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = School)]
pub struct Academy {
    pub id: i64,
    #[publish(embeds)]
    pub places: Vec<Place>,
}

/// Valid: an embedded value with its own `Embed` impl, not a `Publish` model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Raw(serde_json::Value);

impl promiscuous::core::model::Embed for Raw {
    fn embed(&self) -> promiscuous::Result<serde_json::Value> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "school/archive")]
pub struct Archive {
    pub id: i64,
    #[publish(embeds)]
    pub raw: Raw,
}

/// Validates against a fresh, up-to-date export, so only attribute problems remain.
fn validate() -> &'static ValidationError {
    static ERROR: OnceLock<ValidationError> = OnceLock::new();
    ERROR.get_or_init(|| {
        let path = std::env::temp_dir()
            .join(format!("promiscuous-unproducible-{}", std::process::id()))
            .join("school.rs");
        write_mocks("school", &path).unwrap();
        publishers(&path).unwrap_err()
    })
}

fn find<'a>(error: &'a ValidationError, model: &str) -> Vec<&'a Problem> {
    error
        .problems
        .iter()
        .filter(|p| p.model() == Some(model))
        .collect()
}

#[test]
fn reports_every_problem_at_once() {
    let error = validate();
    let models: Vec<_> = error.problems.iter().filter_map(Problem::model).collect();
    assert_eq!(
        models,
        [
            "Campus",
            "Classroom",
            "College",
            "Course",
            "Student",
            "Teacher",
            "Timetable"
        ],
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("validate::publishers found 7 problems:\n1. "),
        "{message}"
    );
    // The valid models were checked too.
    for valid in ["Academy", "Archive", "Person", "Place", "School"] {
        assert!(error.report.checked.iter().any(|m| m == valid), "{message}");
    }
    assert!(find(error, "Person").is_empty());
    assert!(find(error, "Academy").is_empty());
}

#[test]
fn inherited_virtual_attribute_missing_in_subclass() {
    let error = validate();
    let problems = find(error, "Student");
    let [Problem::AttributeFails {
        attribute, reason, ..
    }] = &problems[..]
    else {
        panic!("{error}");
    };
    assert_eq!(attribute, "full_name");
    assert_eq!(
        problems[0].to_string(),
        format!("Student.full_name cannot be produced from Student::default(): {reason}")
    );
    assert!(
        reason.contains("Student has no serialised field `full_name`; add the field, or declare it as virtual on Student (`#[publish(virtual(full_name))]`)"),
        "{reason}"
    );
}

#[test]
fn field_renamed_or_skipped_by_serde() {
    let error = validate();
    let course = find(error, "Course");
    assert!(
        course[0]
            .to_string()
            .starts_with("Course.name cannot be produced from Course::default(): Course has no serialised field `name`"),
        "{error}"
    );
    let teacher = find(error, "Teacher");
    assert!(
        teacher[0]
            .to_string()
            .starts_with("Teacher.nickname cannot be produced from Teacher::default(): Teacher has no serialised field `nickname`"),
        "{error}"
    );
}

#[test]
fn virtual_attribute_that_panics_or_fails() {
    let error = validate();
    let classroom = find(error, "Classroom")[0].to_string();
    assert!(
        classroom.starts_with("Classroom: its published attributes cannot be produced from Classroom::default(): it panicked: index out of bounds"),
        "{classroom}"
    );
    let timetable = find(error, "Timetable")[0].to_string();
    assert!(
        timetable.starts_with(
            "Timetable.slots cannot be produced from Timetable::default(): cannot serialise the virtual attribute: key must be a string"
        ),
        "{timetable}"
    );
}

#[test]
fn attribute_of_another_type_than_exported() {
    let error = validate();
    assert_eq!(
        find(error, "Campus")[0].to_string(),
        "Campus.location is exported as object but Campus::default() produces a string (\"\"): subscribers' mocks would send another type than the real publisher; change the field's type or its Serialize impl"
    );
}

#[test]
fn inherited_embedded_attribute_not_declared_again() {
    let error = validate();
    assert_eq!(
        find(error, "College")[0].to_string(),
        "College.places is embedded by School, but College inherits it as a plain field, which is published through serde instead of as embedded documents; mark the field #[publish(embeds)] on College too"
    );
}

#[test]
fn custom_embeds_export_as_json() {
    use promiscuous::core::model::PublisherRegistration;
    let def = <Archive as Publish>::definition();
    let registration = PublisherRegistration::of(def).unwrap();
    assert!(registration.embedded_definition("raw").is_none());
    let text = promiscuous_validate::mocks_source("school", &[def]);
    assert!(
        text.contains("    /// `raw` (object).\n    #[publish]\n    pub raw: ::serde_json::Map<String, ::serde_json::Value>,"),
        "{text}"
    );
    let school = PublisherRegistration::of(<School as Publish>::definition()).unwrap();
    assert_eq!(
        school.embedded_definition("places").map(|d| d.model),
        Some("Place")
    );
}

//! Property tests of what `weft serve` does with untrusted request bodies: any bytes, and
//! JSON shaped like a job with random fields, give a submission or an error, never a panic;
//! an accepted submission always satisfies the API's rules. Bounded to a few hundred cases so
//! the file runs in about a second.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use weft_serve::api::parse_submission;

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A field value that is often the right kind for a job, sometimes not.
fn field(valid: Vec<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![3 => prop::sample::select(valid), 1 => any_json()]
}

/// JSON shaped like a submission: known keys with plausible or random values, sometimes a
/// stray key.
fn job_like() -> impl Strategy<Value = Value> {
    let job_type = field(vec![
        json!("data_analysis"),
        json!("image_processing"),
        json!("notification"),
        json!("mining"),
    ]);
    let priority = field(vec![json!(0), json!(2), json!(3), json!("high"), json!(-1)]);
    let id = field(vec![
        json!("job-1"),
        json!(""),
        json!("../etc"),
        json!("a".repeat(129)),
    ]);
    let data = field(vec![
        json!({"dataset": "d", "query": "q", "rows": 5}),
        json!({"dataset": " ", "query": "q"}),
        json!({"dataset": "d", "query": "q", "rows": 2_000_000}),
        json!({"image_url": "http://x/a.png", "options": {"resize": "2x2"}}),
        json!({"image_url": "ftp://x/a.png"}),
        json!({"recipients": ["a@x"], "message": "m", "channel": "sms"}),
        json!({"recipients": [], "message": "m", "channel": "fax"}),
    ]);
    (
        job_type,
        priority,
        id,
        data,
        any::<[bool; 4]>(),
        prop::option::of((".{0,8}", any_json())),
    )
        .prop_map(|(t, p, i, d, keep, stray)| {
            let mut m = Map::new();
            for ((key, value), keep) in [("type", t), ("priority", p), ("id", i), ("data", d)]
                .into_iter()
                .zip(keep)
            {
                if keep {
                    m.insert(key.to_owned(), value);
                }
            }
            if let Some((k, v)) = stray {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_parsed_or_refused_without_panicking(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_submission(&body);
    }

    #[test]
    fn job_shaped_json_is_accepted_only_when_it_follows_the_rules(job in job_like()) {
        let body = serde_json::to_vec(&job).unwrap_or_default();
        if let Ok(sub) = parse_submission(&body) {
            prop_assert!(sub.priority < 3);
            if let Some(id) = &sub.id {
                prop_assert!(!id.is_empty() && id.len() <= 128);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
            }
            prop_assert_eq!(sub.spec.job_type().as_str(), job["type"].as_str().unwrap_or_default());
        }
    }
}

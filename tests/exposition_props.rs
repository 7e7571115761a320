//! Property tests for the text exposition parser: whatever is written in the format (any UTF-8
//! label value, escaped as the format says; any float, with or without a timestamp) parses back
//! to the same labels and samples, and no input of any kind makes the parser panic.

use proptest::prelude::*;
use sre_agent::ingest::Batch;
use sre_agent::ingest::exposition::parse;

#[derive(Debug, Clone)]
struct Line {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<i64>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(lines: &[Line]) -> String {
    let mut out = String::from("# HELP ignored a help text, with {braces} and \"quotes\"\n");
    for l in lines {
        out.push_str(&l.name);
        if !l.labels.is_empty() {
            let inner: Vec<String> = l
                .labels
                .iter()
                .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                .collect();
            out.push_str(&format!("{{{}}}", inner.join(",")));
        }
        let v = if l.value.is_nan() {
            "NaN".to_string()
        } else if l.value.is_infinite() {
            if l.value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
        } else {
            format!("{:?}", l.value)
        };
        out.push_str(&format!(" {v}"));
        if let Some(ts) = l.timestamp {
            out.push_str(&format!(" {ts}"));
        }
        out.push('\n');
    }
    out
}

fn line() -> impl Strategy<Value = Line> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        prop::collection::btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            "\\PC{1,12}|[,={}\"\\\\\n ]{1,6}",
            0..5,
        ),
        prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY)],
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(name, labels, value, timestamp)| Line {
            name,
            labels: labels
                .into_iter()
                .filter(|(n, _)| n != "__name__" && n != "job")
                .collect(),
            value,
            timestamp,
        })
}

proptest! {
    #[test]
    fn rendered_lines_parse_back_exactly(lines in prop::collection::vec(line(), 1..20)) {
        let text = render(&lines);
        let mut batch = Batch::default();
        let n = parse(text.as_bytes(), 7, &[("job", "j")], &mut batch)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(n, lines.len());
        for (l, s) in lines.iter().zip(&batch.series) {
            let got: Vec<(String, String)> = batch
                .label_pairs(s)
                .map(|(a, b)| (String::from_utf8(a.to_vec()).unwrap(), String::from_utf8(b.to_vec()).unwrap()))
                .collect();
            let mut want = l.labels.clone();
            want.push(("__name__".into(), l.name.clone()));
            want.push(("job".into(), "j".into()));
            want.sort();
            prop_assert_eq!(got, want);
            let (ts, v) = batch.series_samples(s)[0];
            prop_assert_eq!(ts, l.timestamp.unwrap_or(7));
            prop_assert!(v == l.value || (v.is_nan() && l.value.is_nan()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut batch = Batch::default();
        let _ = parse(&bytes, 0, &[("job", "j"), ("instance", "i")], &mut batch);
    }

    #[test]
    fn mutated_valid_text_never_panics(lines in prop::collection::vec(line(), 1..5), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = render(&lines).into_bytes();
        let i = cut.index(bytes.len());
        bytes[i] = byte;
        let mut batch = Batch::default();
        let _ = parse(&bytes, 0, &[], &mut batch);
    }
}

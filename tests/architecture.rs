//! The layering in docs/ARCHITECTURE.md, checked against the code's own imports.
//!
//! Every `crate::<layer>` path in a layer's non-test code is an edge. An edge must be in the
//! table of allowed edges or in the list of known back-edges; the allowed edges must form no
//! circle; every known back-edge must still exist (so removing one means shrinking the list, and
//! the debt can only go down). Files above the size limit are listed with a ceiling they may not
//! grow past. Reads only the source tree: no build of the crate's internals needed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Lines of non-test code a file may have, unless listed with its own ceiling.
const FILE_LIMIT: usize = 600;

type Edges = BTreeMap<String, BTreeSet<String>>;

fn doc() -> String {
    fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md")
}

/// The lines between `<!-- name:begin -->` and `<!-- name:end -->`, inside a code fence.
fn block(doc: &str, name: &str) -> Vec<String> {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {begin}"));
    let stop = doc[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {end}"));
    doc[start + begin.len()..start + stop]
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect()
}

/// `layer: a b c` lines (allowed edges) or `layer -> a b` lines (back-edges).
fn parse_edges(lines: &[String], sep: &str) -> Edges {
    let mut out = Edges::new();
    for l in lines {
        let (from, to) = l
            .split_once(sep)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md: `{l}` is not `layer{sep} …`"));
        let set = out.entry(from.trim().to_string()).or_default();
        set.extend(to.split_whitespace().map(str::to_string));
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code before the first `#[cfg(test)]`, without `//` comments; `None` for a test file.
fn non_test_code(path: &Path) -> Option<String> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return None;
    }
    let text = fs::read_to_string(path).expect("source file");
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    Some(
        code.lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

struct Source {
    /// src-relative path, layer, non-test code.
    files: Vec<(String, String, String)>,
    layers: BTreeSet<String>,
}

fn source() -> Source {
    let src = Path::new(ROOT).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    let mut files = Vec::new();
    let mut layers = BTreeSet::new();
    for p in paths {
        let rel = p
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let first = rel.split('/').next().unwrap_or("");
        let layer = first.trim_end_matches(".rs").to_string();
        if layer != "lib" && layer != "main" {
            layers.insert(layer.clone());
        }
        if let Some(code) = non_test_code(&p) {
            files.push((rel, layer, code));
        }
    }
    Source { files, layers }
}

/// Edges from the code, each with the files that make it. Paths into the crate root
/// (`crate::Pipeline`) count as the layer `lib`.
fn code_edges(s: &Source) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (rel, layer, code) in &s.files {
        if !s.layers.contains(layer) {
            continue;
        }
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || name == *layer {
                continue;
            }
            let target = if s.layers.contains(&name) {
                name
            } else {
                "lib".to_string()
            };
            out.entry((layer.clone(), target))
                .or_default()
                .insert(rel.clone());
        }
    }
    out
}

fn has_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &Edges,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[at..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn imports_follow_the_layer_table() {
    let doc = doc();
    let allowed = parse_edges(&block(&doc, "layers"), ":");
    let known = parse_edges(&block(&doc, "back-edges"), "->");
    let s = source();
    for layer in &s.layers {
        assert!(
            allowed.contains_key(layer),
            "layer `{layer}` (src/{layer}) is missing from the layer table in docs/ARCHITECTURE.md"
        );
    }
    let found = code_edges(&s);
    let mut problems = Vec::new();
    for ((from, to), files) in &found {
        let ok = allowed.get(from).is_some_and(|t| t.contains(to))
            || known.get(from).is_some_and(|t| t.contains(to));
        if !ok {
            problems.push(format!(
                "{from} -> {to} (in {}) is not an allowed edge",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for (from, tos) in &known {
        for to in tos {
            if !found.contains_key(&(from.clone(), to.clone())) {
                problems.push(format!(
                    "known back-edge {from} -> {to} is gone: remove it from the list"
                ));
            }
            if allowed.get(from).is_some_and(|t| t.contains(to)) {
                problems.push(format!("{from} -> {to} is both allowed and a back-edge"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    if let Some(cycle) = has_cycle(&allowed) {
        panic!("the allowed edges form a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn files_stay_small() {
    let doc = doc();
    let ceilings: BTreeMap<String, usize> = block(&doc, "large-files")
        .iter()
        .map(|l| {
            let (path, n) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("large-files: `{l}` is not `path: lines`"));
            let n = n
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("large-files: `{l}`: not a number"));
            (path.trim().to_string(), n)
        })
        .collect();
    let s = source();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (rel, _, code) in &s.files {
        let lines = code.lines().count();
        let path = format!("src/{rel}");
        let limit = ceilings.get(&path).copied().unwrap_or(FILE_LIMIT);
        if lines > limit {
            problems.push(format!(
                "{path}: {lines} lines of non-test code, above {limit}"
            ));
        }
        if ceilings.contains_key(&path) {
            seen.insert(path.clone());
            if lines <= FILE_LIMIT {
                problems.push(format!(
                    "{path} is down to {lines} lines: remove it from large-files"
                ));
            }
        }
    }
    for path in ceilings.keys() {
        if !seen.contains(path) {
            problems.push(format!("large-files lists {path}, which is gone"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

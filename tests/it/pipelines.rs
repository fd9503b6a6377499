//! Parses every pipeline in `pipeline-examples/` with the resource's own config types.
//!
//! Each resource whose type runs the s3-asset-manager image has its `source` deserialised
//! into `Source` (and validated), each `get` of it its `params` into `InParams`, and each
//! `put` of it its `params` into `OutParams` and its `get_params` into `InParams`. YAML is
//! converted to JSON first, so these are the same deserialisers the binaries use on stdin.
//! Each example also names the image once, in one anchored `source` with a pinned tag, which
//! the resource type and every task that runs the image share.
//!
//! A whole-value `((var))` reads as a string here; the examples use them for strings only, and
//! in `signing_key` and `trusted_keys` it stands for a real key of that kind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use s3_asset_manager::resource::{InParams, OutParams, Source, Version};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The image name that identifies this resource type in `resource_types`.
const IMAGE_NAME: &str = "s3-asset-manager";

/// Hooks that any step, and any job, may carry; each holds one step.
const HOOKS: [&str; 5] = ["on_success", "on_failure", "on_error", "on_abort", "ensure"];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline-examples")
}

/// A private key (made with `ssh-keygen -t ed25519 -N ''`, for the tests only) and its public
/// line: what a credential manager's `((var))` holds in `signing_key` and `trusted_keys`.
const STAND_IN_PRIVATE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-key"));
const STAND_IN_PUBLIC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/test-key.pub"
));

/// Replaces a whole-value `((var))` in `signing_key` and `trusted_keys` with a real key of that
/// kind, so that validation checks the shape around it rather than the placeholder.
fn stand_in_keys(source: &mut Value) {
    let is_var = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with("((") && s.ends_with("))"))
    };
    if let Some(k) = source.get_mut("signing_key").filter(|v| is_var(v)) {
        *k = Value::String(STAND_IN_PRIVATE.into());
    }
    if let Some(list) = source.get_mut("trusted_keys").and_then(Value::as_array_mut) {
        for k in list.iter_mut().filter(|v| is_var(v)) {
            *k = Value::String(STAND_IN_PUBLIC.into());
        }
    }
}

/// Parses a pipeline, applying YAML merge keys (`<<: *anchor`) as Concourse does.
fn load(text: &str) -> Result<Value, String> {
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("invalid merge key: {e}"))?;
    serde_json::to_value(yaml).map_err(|e| format!("not representable as JSON: {e}"))
}

/// One `get` or `put` step, wherever it sits in a job.
struct StepRef<'a> {
    /// Where it is, e.g. `jobs.build.plan[1].in_parallel.steps[0]`.
    at: String,
    job: String,
    put: bool,
    /// The resource it uses: `resource:` if given, else the step's name (empty for a task).
    resource: String,
    /// Whether it is a `task` step (then `put` is false and `resource` empty).
    task: bool,
    step: &'a Value,
}

/// What checking one pipeline found.
#[derive(Default, Debug)]
struct Checked {
    /// Blocks deserialised successfully (sources, params, get_params, versions).
    blocks: usize,
    /// Tasks that run one of the image's entrypoints, their params checked.
    tasks: usize,
    /// Resources of this type.
    resources: usize,
    /// `get`/`put` steps of such resources.
    steps: usize,
    errors: Vec<String>,
}

/// The names of the resource types that run this project's image.
fn asset_manager_types(pipeline: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for rt in array(pipeline.get("resource_types")) {
        let image = matches!(str_at(rt, "type"), Some("registry-image" | "docker-image"));
        let repo = rt.pointer("/source/repository").and_then(Value::as_str);
        if let (true, Some(repo), Some(name)) = (image, repo, str_at(rt, "name")) {
            if image_name(repo) == IMAGE_NAME {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// `registry.example.com:5000/team/s3-asset-manager:1.2@sha256:…` → `s3-asset-manager`.
fn image_name(repository: &str) -> &str {
    let repo = repository.split('@').next().unwrap_or(repository);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Collects every `get`/`put` step under `step`, recursing through every step that holds
/// others. A mapping that is no known kind of step is an error, so a nesting this walker
/// does not understand cannot hide steps from the checks.
fn collect<'a>(
    step: &'a Value,
    at: String,
    job: &str,
    out: &mut Vec<StepRef<'a>>,
    errors: &mut Vec<String>,
) {
    let Some(map) = step.as_object() else {
        errors.push(format!("{at}: a step must be a mapping"));
        return;
    };
    let mut kinds = 0;
    for kind in ["get", "put"] {
        if let Some(name) = map.get(kind) {
            kinds += 1;
            let resource = map.get("resource").unwrap_or(name);
            match resource.as_str() {
                Some(resource) => out.push(StepRef {
                    at: format!("{at} ({kind}: {})", name.as_str().unwrap_or("?")),
                    job: job.to_string(),
                    put: kind == "put",
                    resource: resource.to_string(),
                    task: false,
                    step,
                }),
                None => errors.push(format!("{at}: `{kind}` names no resource")),
            }
        }
    }
    for kind in ["task", "set_pipeline", "load_var"] {
        if map.contains_key(kind) {
            kinds += 1;
        }
    }
    if let Some(name) = map.get("task") {
        out.push(StepRef {
            at: format!("{at} (task: {})", name.as_str().unwrap_or("?")),
            job: job.to_string(),
            put: false,
            resource: String::new(),
            task: true,
            step,
        });
    }
    if let Some(list) = map.get("do") {
        kinds += 1;
        collect_list(list, &format!("{at}.do"), job, out, errors);
    }
    for kind in ["in_parallel", "aggregate"] {
        match map.get(kind) {
            None => {}
            Some(Value::Object(o)) => {
                kinds += 1;
                match o.get("steps") {
                    Some(list) => {
                        collect_list(list, &format!("{at}.{kind}.steps"), job, out, errors)
                    }
                    None => errors.push(format!("{at}.{kind}: has no `steps`")),
                }
            }
            Some(list) => {
                kinds += 1;
                collect_list(list, &format!("{at}.{kind}"), job, out, errors);
            }
        }
    }
    if let Some(inner) = map.get("try") {
        kinds += 1;
        collect(inner, format!("{at}.try"), job, out, errors);
    }
    if kinds != 1 {
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        errors.push(format!(
            "{at}: expected exactly one kind of step (get, put, task, do, in_parallel, try, ...), found keys {keys:?}"
        ));
    }
    // `across`, `timeout`, `attempts` and `tags` modify this step and hold no other step.
    for hook in HOOKS {
        if let Some(inner) = map.get(hook) {
            collect(inner, format!("{at}.{hook}"), job, out, errors);
        }
    }
}

fn collect_list<'a>(
    list: &'a Value,
    at: &str,
    job: &str,
    out: &mut Vec<StepRef<'a>>,
    errors: &mut Vec<String>,
) {
    match list.as_array() {
        Some(steps) => {
            for (i, s) in steps.iter().enumerate() {
                collect(s, format!("{at}[{i}]"), job, out, errors);
            }
        }
        None => errors.push(format!("{at}: expected a list of steps")),
    }
}

/// Deserialises one block with the protocol's own types, counting it or recording why not.
fn parse<T: DeserializeOwned>(block: &Value, what: &str, checked: &mut Checked) -> Option<T> {
    match serde_json::from_value::<T>(block.clone()) {
        Ok(v) => {
            checked.blocks += 1;
            Some(v)
        }
        Err(e) => {
            checked.errors.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Checks one parsed pipeline.
fn check(pipeline: &Value) -> Checked {
    let mut checked = Checked::default();
    let ours = asset_manager_types(pipeline);
    if ours.is_empty() {
        checked.errors.push(format!(
            "no entry in resource_types runs the {IMAGE_NAME} image (type: registry-image, source.repository: .../{IMAGE_NAME})"
        ));
    }

    let mut resource_types = BTreeMap::new();
    for r in array(pipeline.get("resources")) {
        let (Some(name), Some(ty)) = (str_at(r, "name"), str_at(r, "type")) else {
            checked
                .errors
                .push(format!("resources: an entry without name or type: {r}"));
            continue;
        };
        resource_types.insert(name.to_string(), ty.to_string());
        if !ours.contains(ty) {
            continue;
        }
        checked.resources += 1;
        let what = format!("resources.{name}.source");
        let mut source = r
            .get("source")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        stand_in_keys(&mut source);
        if let Some(source) = parse::<Source>(&source, &what, &mut checked) {
            if let Err(e) = source.validate() {
                checked.errors.push(format!("{what}: {e}"));
            }
        }
        if let Some(pin) = r.get("version").filter(|v| v.is_object()) {
            parse::<Version>(pin, &format!("resources.{name}.version"), &mut checked);
        }
    }

    let mut steps = Vec::new();
    let mut job_names = BTreeSet::new();
    for job in array(pipeline.get("jobs")) {
        let name = str_at(job, "name").unwrap_or("?");
        job_names.insert(name.to_string());
        collect_list(
            job.get("plan").unwrap_or(&Value::Null),
            &format!("jobs.{name}.plan"),
            name,
            &mut steps,
            &mut checked.errors,
        );
        for hook in HOOKS {
            if let Some(step) = job.get(hook) {
                collect(
                    step,
                    format!("jobs.{name}.{hook}"),
                    name,
                    &mut steps,
                    &mut checked.errors,
                );
            }
        }
    }

    // Concourse refuses a `passed:` job that never uses the resource.
    let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in steps.iter().filter(|s| !s.task) {
        used.entry(&s.job).or_default().insert(&s.resource);
    }
    for s in steps.iter().filter(|s| s.task) {
        check_task(s, &mut checked);
    }
    let put_to: BTreeSet<String> = (steps.iter().filter(|s| s.put))
        .map(|s| s.resource.clone())
        .collect();
    if checked.resources == 0 && !ours.is_empty() && checked.tasks == 0 {
        checked.errors.push(format!(
            "no resource has type {}",
            ours.iter().cloned().collect::<Vec<_>>().join(" or ")
        ));
    }
    for s in steps.iter().filter(|s| !s.task) {
        let Some(ty) = resource_types.get(&s.resource) else {
            checked
                .errors
                .push(format!("{}: no resource named {:?}", s.at, s.resource));
            continue;
        };
        for upstream in array(s.step.get("passed")) {
            let upstream = upstream.as_str().unwrap_or("?");
            if !job_names.contains(upstream) {
                checked
                    .errors
                    .push(format!("{}: passed: no job named {upstream:?}", s.at));
            } else if !used
                .get(upstream)
                .is_some_and(|r| r.contains(s.resource.as_str()))
            {
                checked.errors.push(format!(
                    "{}: passed: job {upstream:?} does not use {:?}",
                    s.at, s.resource
                ));
            }
        }
        if !ours.contains(ty) {
            continue;
        }
        checked.steps += 1;
        let empty = Value::Object(Default::default());
        if s.put {
            // `out` always receives params, and `repo` is required, so a missing block is an error.
            parse::<OutParams>(
                s.step.get("params").unwrap_or(&empty),
                &format!("{}: params", s.at),
                &mut checked,
            );
            if let Some(p) = s.step.get("get_params") {
                parse::<InParams>(p, &format!("{}: get_params", s.at), &mut checked);
            }
        } else {
            if let Some(p) = s.step.get("params") {
                parse::<InParams>(p, &format!("{}: params", s.at), &mut checked);
            }
            if let Some(v) = s.step.get("version").filter(|v| v.is_object()) {
                parse::<Version>(v, &format!("{}: version", s.at), &mut checked);
            }
            // A lookup `put` records its commit as a version before anything is built, and
            // `check` then resumes from the latest set: a triggering get of a resource that a
            // put writes needs `passed:`, or it would see unbuilt commits and miss sets
            // completed in between. (A resource only read gets every set its check finds.)
            let triggers = s.step.get("trigger").and_then(Value::as_bool) == Some(true);
            if triggers
                && put_to.contains(s.resource.as_str())
                && array(s.step.get("passed")).is_empty()
            {
                checked.errors.push(format!(
                    "{}: trigger: true without passed: (a lookup put's version has no set; take versions from the job that publishes them)",
                    s.at
                ));
            }
        }
    }
    if checked.steps == 0 && checked.resources > 0 && checked.tasks == 0 {
        checked.errors.push(
            "no get or put step uses an s3-asset-manager resource, so no params were checked"
                .into(),
        );
    }
    checked
}

/// The image's task entrypoints (assets/*) and the command each runs.
const ENTRYPOINTS: [(&str, &str); 3] =
    [("check", "check"), ("upload", "upload"), ("prune", "prune")];

/// A task that runs one of the image's entrypoints: each of its params must be a variable
/// that command reads (or one of AWS's own), and must parse as the command line would.
fn check_task(s: &StepRef<'_>, checked: &mut Checked) {
    use clap::CommandFactory;
    let Some(config) = s.step.get("config") else {
        return;
    };
    let Some(path) = config.get("run").and_then(|r| str_at(r, "path")) else {
        return;
    };
    let Some((_, command)) = ENTRYPOINTS.iter().find(|(p, _)| *p == path) else {
        return;
    };
    checked.tasks += 1;
    let cli = s3_asset_manager::cli::Cli::command();
    let sub = cli
        .find_subcommand(command)
        .expect("the entrypoint's command exists");
    let known: BTreeSet<String> = sub
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let mut env = Vec::new();
    for (k, v) in config
        .get("params")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !known.contains(k) && !k.starts_with("AWS_") {
            checked.errors.push(format!(
                "{}: params.{k}: `{command}` reads no such variable",
                s.at
            ));
        }
        let v = match v {
            Value::String(v) => v.clone(),
            other => other.to_string(),
        };
        // A credential manager's ((var)) stands for a valid value: not parsed here.
        if !v.contains("((") {
            env.push((k.clone(), v));
        }
    }
    checked.blocks += 1;
    if command == &"prune" {
        prune_params_parse(&env, &s.at, checked);
    }
}

/// Runs `prune --help`'s parser over the task's variables: a value the command would refuse
/// (a duration without a unit, say) is an error here, not at 2 AM.
fn prune_params_parse(env: &[(String, String)], at: &str, checked: &mut Checked) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_s3-asset-manager"));
    cmd.args(["prune", "--dry-run"]).env_clear().env(
        "PACKAGE_ASSETS_BUCKET",
        "file:///nonexistent-bucket-for-the-pipeline-check",
    );
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("S3AM_PRUNE")) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every value parsed: the run gets as far as opening the (missing) bucket.
    if out.status.code() != Some(4) || !stderr.contains("bucket directory") {
        checked
            .errors
            .push(format!("{at}: params: {}", stderr.trim()));
    }
}

fn check_text(text: &str) -> Checked {
    match load(text) {
        Ok(pipeline) => check(&pipeline),
        Err(e) => Checked {
            errors: vec![e],
            ..Checked::default()
        },
    }
}

/// Where a `repository:` in the pipeline's text names this project's image: (line number,
/// line). Read from the text, because parsing resolves aliases and so hides how often the
/// image is written out.
fn image_lines(text: &str) -> Vec<(usize, &str)> {
    let names_ours = |line: &str| {
        line.split("repository:").skip(1).any(|rest| {
            let value = rest.trim_start();
            let value = value
                .split(|c: char| c == ',' || c == '}' || c == '#' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .trim_matches(|c: char| c == '"' || c == '\'');
            image_name(value) == IMAGE_NAME
        })
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#') && names_ours(l))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

/// The anchor a line defines (`source: &s3am {...}` gives `s3am`), if any.
fn anchor_on(line: &str) -> Option<&str> {
    let at = line.find('&')?;
    let name = line[at + 1..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .next()?;
    (!name.is_empty()).then_some(name)
}

/// Every registry-image `source` that names this project's image, with where it is: the
/// resource types, resources and every task's `image_resource`, after aliases are resolved.
fn image_sources(pipeline: &Value) -> (Vec<(String, Value)>, Vec<String>) {
    fn ours(source: Option<&Value>) -> Option<&Value> {
        source.filter(|s| {
            s.get("repository")
                .and_then(Value::as_str)
                .is_some_and(|r| image_name(r) == IMAGE_NAME)
        })
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (list, kind) in [
        ("resource_types", "resource_types"),
        ("resources", "resources"),
    ] {
        for r in array(pipeline.get(list)) {
            if let Some(s) = ours(r.get("source")) {
                let name = str_at(r, "name").unwrap_or("?");
                found.push((format!("{kind}.{name}.source"), s.clone()));
            }
        }
    }
    let mut steps = Vec::new();
    for job in array(pipeline.get("jobs")) {
        let name = str_at(job, "name").unwrap_or("?");
        collect_list(
            job.get("plan").unwrap_or(&Value::Null),
            &format!("jobs.{name}.plan"),
            name,
            &mut steps,
            &mut errors,
        );
    }
    for s in steps.iter().filter(|s| s.task) {
        let config = s.step.get("config");
        let image = config.and_then(|c| c.get("image_resource"));
        let source = ours(image.and_then(|i| i.get("source")));
        if let Some(source) = source {
            found.push((format!("{}: image_resource.source", s.at), source.clone()));
        }
        let entrypoint = config
            .and_then(|c| c.get("run"))
            .and_then(|r| str_at(r, "path"))
            .is_some_and(|p| ENTRYPOINTS.iter().any(|(e, _)| *e == p));
        if entrypoint && source.is_none() {
            errors.push(format!(
                "{}: runs one of the image's entrypoints, so its config needs `image_resource: {{type: registry-image, source: *ANCHOR}}`",
                s.at
            ));
        }
    }
    (found, errors)
}

/// The image is named once, in one anchored `source`, with a pinned tag (not `latest`, not
/// missing), and every resource type and task that runs it uses that same source.
fn image_pin_errors(text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let lines = image_lines(text);
    match lines.as_slice() {
        [(n, line)] => {
            if anchor_on(line).is_none() {
                errors.push(format!(
                    "line {n}: the {IMAGE_NAME} image is named without an anchor: write `source: &s3am {{repository: ..., tag: \"...\"}}` and use `*s3am` elsewhere"
                ));
            }
        }
        [] => errors.push(format!("no `repository:` names the {IMAGE_NAME} image")),
        many => errors.push(format!(
            "the {IMAGE_NAME} image is named {} times (lines {}): name it once, anchored, and use the alias elsewhere",
            many.len(),
            many.iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    let pipeline = match load(text) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    let (sources, walk_errors) = image_sources(&pipeline);
    errors.extend(walk_errors);
    if !sources
        .iter()
        .any(|(at, _)| at.starts_with("resource_types."))
    {
        errors.push(format!("no resource type runs the {IMAGE_NAME} image"));
    }
    for (at, source) in &sources {
        match source.get("tag").and_then(Value::as_str) {
            None | Some("") => errors.push(format!("{at}: the image's tag is missing: pin one")),
            Some("latest") => errors.push(format!("{at}: the image's tag is `latest`: pin one")),
            Some(_) => {}
        }
    }
    if let Some((first_at, first)) = sources.first() {
        for (at, source) in &sources[1..] {
            if source != first {
                errors.push(format!(
                    "{at}: {source} is not the image {first_at} names, {first}"
                ));
            }
        }
    }
    errors
}

fn example_files() -> Vec<PathBuf> {
    let dir = examples_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no pipelines in {}", dir.display());
    files
}

#[test]
fn every_example_pins_one_image_through_one_anchor() {
    let mut failures = Vec::new();
    let mut tags = BTreeSet::new();
    for file in example_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        failures.extend(
            image_pin_errors(&text)
                .iter()
                .map(|e| format!("{name}: {e}")),
        );
        if let Ok(pipeline) = load(&text) {
            for (_, source) in image_sources(&pipeline).0 {
                tags.insert(
                    source
                        .get("tag")
                        .cloned()
                        .unwrap_or(Value::Null)
                        .to_string(),
                );
            }
        }
    }
    if tags.len() > 1 {
        failures.push(format!("the examples pin different tags: {tags:?}"));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_second_tag_or_an_unpinned_image_fails() {
    let good = "resource_types:
- {name: am, type: registry-image, source: &s3am {repository: example/s3-asset-manager, tag: \"1.2.0\"}}
jobs:
- name: prune
  plan:
  - task: prune
    config:
      platform: linux
      image_resource: {type: registry-image, source: *s3am}
      run: {path: prune}
";
    assert_eq!(image_pin_errors(good), Vec::<String>::new());
    let cases = [
        // (what replaces `*s3am` or the anchored source, text the error must contain)
        (
            good.replace(
                "source: *s3am",
                "source: {repository: example/s3-asset-manager, tag: \"1.1.0\"}",
            ),
            "named 2 times",
        ),
        (
            good.replace(
                "image_resource: {type: registry-image, source: *s3am}",
                "image_resource: {type: registry-image, source: {repository: node}}",
            ),
            "needs `image_resource",
        ),
        (good.replace(", tag: \"1.2.0\"", ""), "tag is missing"),
        (good.replace("\"1.2.0\"", "latest"), "`latest`"),
        (
            good.replace("&s3am ", "")
                .replace("*s3am", "{repository: x/other}"),
            "without an anchor",
        ),
    ];
    for (text, needle) in cases {
        let errors = image_pin_errors(&text);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "expected an error containing {needle:?} for\n{text}\ngot {errors:?}"
        );
    }
}

#[test]
fn every_example_pipeline_parses_with_the_resource_types() {
    let mut failures = Vec::new();
    for file in &example_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        let checked = check_text(&text);
        println!(
            "{name}: {} resource(s), {} step(s), {} block(s) checked",
            checked.resources, checked.steps, checked.blocks
        );
        if checked.blocks == 0 {
            failures.push(format!("{name}: no block was checked"));
        }
        failures.extend(checked.errors.iter().map(|e| format!("{name}: {e}")));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A minimal pipeline around one resource source and one job plan, for the negative checks.
fn pipeline(source: &str, plan: &str) -> String {
    format!(
        "resource_types:
- {{name: am, type: registry-image, source: {{repository: registry.example.com/ci/s3-asset-manager:1}}}}
resources:
- {{name: repo, type: git, source: {{uri: https://example.com/r.git}}}}
- {{name: assets, type: am, source: {source}}}
jobs:
- name: build
  plan:
{plan}
"
    )
}

#[test]
fn a_well_formed_snippet_passes() {
    let checked = check_text(&pipeline(
        "{bucket: ci-assets}",
        "  - get: repo\n  - put: assets\n    params: {repo: repo}\n    get_params: {skip_download: true}",
    ));
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert_eq!(
        (checked.resources, checked.steps, checked.blocks),
        (1, 1, 3)
    );
}

#[test]
fn misspelled_or_missing_keys_fail_and_are_named() {
    let put = "  - get: repo\n  - put: assets\n    params: {repo: repo}";
    let cases = [
        // (source, plan, text the error must contain)
        ("{bukcet: ci-assets}", put, "bukcet"),
        ("{bucket: ci-assets, code_hash_filtr: src}", put, "code_hash_filtr"),
        ("{bucket: ci-assets, cache: sometimes}", put, "sometimes"),
        ("{bucket: ci-assets}", "  - get: repo\n  - put: assets\n    params: {repo: repo, pth: packages}", "pth"),
        ("{bucket: ci-assets}", "  - get: repo\n  - put: assets", "missing field `repo`"),
        (
            "{bucket: ci-assets}",
            "  - get: repo\n  - put: assets\n    params: {repo: repo}\n    get_params: {skip_donwload: true}",
            "skip_donwload",
        ),
        ("{bucket: ci-assets}", "  - get: assets\n    params: {requier: true}", "requier"),
        ("{bucket: ci-assets}", "  - get: assets\n    version: {sha: abc}", "sha"),
        ("{bucket: ci-assets}", "  - get: assets\n    passed: [deploy]", "deploy"),
        ("{bucket: ci-assets}", "  - get: repo\n  - gett: assets", "gett"),
        (
            "{bucket: ci-assets}",
            "  - get: assets\n    trigger: true\n  - get: repo\n  - put: assets\n    params: {repo: repo}",
            "without passed:",
        ),
    ];
    for (source, plan, needle) in cases {
        let checked = check_text(&pipeline(source, plan));
        assert!(
            checked.errors.iter().any(|e| e.contains(needle)),
            "expected an error naming {needle:?} for source {source} and plan\n{plan}\ngot {:?}",
            checked.errors
        );
    }
}

#[test]
fn a_pipeline_without_the_resource_type_fails() {
    let checked = check_text("resources:\n- {name: repo, type: git, source: {uri: x}}\njobs: []\n");
    assert!(
        checked.errors.iter().any(|e| e.contains("resource_types")),
        "{:?}",
        checked.errors
    );
    let unused = pipeline("{bucket: ci-assets}", "  - get: repo");
    assert!(
        check_text(&unused)
            .errors
            .iter()
            .any(|e| e.contains("no get or put step")),
        "a pipeline whose asset resource no step uses must fail"
    );
}

#[test]
fn steps_are_found_in_every_nesting() {
    let plan = "
  - in_parallel:
      fail_fast: true
      steps:
        - get: repo
        - get: a1
          resource: assets
          params: {skip_download: true}
  - in_parallel:
      - do:
          - put: assets
            params: {repo: repo}
  - try:
      put: assets
      params: {repo: repo}
      no_get: true
  - task: t
    file: repo/t.yml
    across:
      - {var: x, values: [a, b]}
    on_success: {get: assets, params: {require: true}}
    on_failure: {put: assets, params: {repo: repo}, get_params: {require: true}}
    on_error: {get: assets}
    on_abort: {get: assets}
    ensure:
      do:
        - get: assets
  on_success: {get: assets}
  ensure: {try: {get: assets}}";
    let checked = check_text(&pipeline("{bucket: ci-assets}", plan));
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    // 10 steps of `assets`; blocks: the source, 5 put/get params, 1 get_params.
    assert_eq!((checked.steps, checked.blocks), (10, 7));
}

#[test]
fn merge_keys_are_applied_before_checking() {
    let text = "resource_types:
- {name: am, type: registry-image, source: {repository: example/s3-asset-manager}}
resources:
- {name: repo, type: git, source: {uri: https://example.com/r.git}}
- name: assets
  type: am
  source: &source {bucket: ci-assets, cache: read-write}
- name: pr-assets
  type: am
  source:
    <<: *source
    cache: read-only
jobs:
- name: build
  plan:
  - get: repo
  - put: assets
    params: {repo: repo}
  - put: pr-assets
    params: {repo: repo}
";
    let checked = check_text(text);
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert_eq!((checked.resources, checked.blocks), (2, 4));
}

// The docs held to the code: the README's `source` table and the reference's variables table
// name what `Source` and the command line take, with the same defaults.

/// The rows (cells, trimmed) of the first Markdown table after the line `heading`.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let start = text
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    text.lines()
        .skip(start + 1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Every `backticked` name in a cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys `Source` takes, as serde lists them when it meets one it does not know.
fn source_keys() -> BTreeSet<String> {
    let e = serde_json::from_value::<Source>(serde_json::json!({"bucket": "b", "zz_unknown": 1}))
        .unwrap_err()
        .to_string();
    let list = e
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("serde's message changed: {e}"));
    backticked(list).into_iter().collect()
}

/// Every variable the command line reads, with its flag and default, over all commands.
fn cli_variables() -> BTreeMap<String, (String, Option<String>)> {
    use clap::CommandFactory;
    let mut out = BTreeMap::new();
    let cli = s3_asset_manager::cli::Cli::command();
    for sub in cli.get_subcommands() {
        for a in sub.get_arguments() {
            let Some(env) = a.get_env() else { continue };
            let flag = a.get_long().map(|l| format!("--{l}")).unwrap_or_default();
            let default = a
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            out.insert(env.to_string_lossy().into_owned(), (flag, default));
        }
    }
    out
}

/// Variables the AWS SDK reads itself (no flag of ours).
const SDK_VARIABLES: [&str; 6] = [
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE",
];

/// Task variables with no `source` key, and why: the put's `params.repo` and `params.path`
/// name the checkout and the package directory; prune is no resource step.
fn task_only(var: &str) -> bool {
    matches!(var, "GIT_REPO_PATH" | "PACKAGE_DIRECTORY") || var.starts_with("S3AM_PRUNE_")
}

/// One vocabulary, held to the code: every key of the README's `source` table is one `Source`
/// takes and every key it takes is there (aliases in parentheses); every task variable the
/// table names is one the command line reads (or the AWS SDK does), and every variable the
/// command line reads has a `source` key unless it is task-only; the reference's table lists
/// every variable with its flag and the default the command line has; and the transfer
/// settings left out of `source` default to what the variables do. Renaming a setting on one
/// side only fails here.
#[test]
fn the_documented_settings_are_the_ones_the_code_takes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let reference = std::fs::read_to_string(root.join("docs/reference.md")).unwrap();
    let rows = table_after(&readme, "### `source`");
    assert!(rows.len() > 10, "the source table: {rows:?}");
    let documented: BTreeSet<String> = rows.iter().flat_map(|r| backticked(&r[0])).collect();
    let taken = source_keys();
    let undocumented: Vec<&String> = taken.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&taken).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "source keys the README lacks: {undocumented:?}; README keys Source refuses: {unknown:?}"
    );

    let cli = cli_variables();
    let named: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| backticked(&r[3]))
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .collect();
    for v in &named {
        assert!(
            cli.contains_key(v) || SDK_VARIABLES.contains(&v.as_str()),
            "the source table names {v}, which nothing reads"
        );
    }
    for v in cli.keys().filter(|v| !task_only(v)) {
        assert!(
            named.contains(v),
            "{v} has no source key in the README's table"
        );
    }
    // A key with one variable has that variable's default.
    for row in &rows {
        let vars = backticked(&row[3]);
        let [var] = vars.as_slice() else { continue };
        match cli.get(var).and_then(|(_, d)| d.as_deref()) {
            None => {}
            Some("") => assert!(
                row[2].starts_with("empty") || row[2].starts_with("none"),
                "{}: {var}'s default is empty, the README says {}",
                row[0],
                row[2]
            ),
            Some(d) => assert_eq!(
                backticked(&row[2]).first().map(String::as_str),
                Some(d),
                "{}: the README gives another default than {var}'s",
                row[0]
            ),
        }
    }

    let vars = table_after(&reference, "## Variables and flags");
    let mut listed = BTreeSet::new();
    for row in &vars {
        let (names, flags) = (backticked(&row[0]), backticked(&row[1]));
        for (i, v) in names.iter().enumerate() {
            listed.insert(v.clone());
            let Some((flag, default)) = cli.get(v) else {
                continue;
            };
            assert_eq!(
                flags.get(i),
                Some(flag),
                "{v}: the reference gives another flag"
            );
            match default.as_deref().filter(|_| names.len() == 1) {
                None => {}
                // An empty default reads as "empty" (or "unset") in the table.
                Some("") => assert!(
                    row[2].starts_with("empty") || row[2].starts_with("unset"),
                    "{v}: the command line's default is empty, the reference says {}",
                    row[2]
                ),
                Some(d) => assert_eq!(
                    backticked(&row[2]).first().map(String::as_str),
                    Some(d),
                    "{v}: the reference gives another default than the command line's"
                ),
            }
        }
    }
    for v in cli.keys() {
        assert!(listed.contains(v), "{v} is missing from docs/reference.md");
    }

    // The transfer settings: `source` without them is `source` with the variables' defaults.
    let mut with_defaults = serde_json::json!({"bucket": "assets"});
    for (key, var) in [
        ("concurrency", "S3AM_CONCURRENCY"),
        ("multipart_threshold", "S3AM_MULTIPART_THRESHOLD"),
        ("part_size", "S3AM_PART_SIZE"),
        ("copy_multipart_threshold", "S3AM_COPY_MULTIPART_THRESHOLD"),
        ("copy_part_size", "S3AM_COPY_PART_SIZE"),
        ("timeout", "S3AM_TIMEOUT"),
    ] {
        let default = cli[var]
            .1
            .clone()
            .unwrap_or_else(|| panic!("{var} has no default"));
        with_defaults[key] = Value::String(default);
    }
    let tuning = |v: Value| {
        let s: Source = serde_json::from_value(v).unwrap();
        format!("{:?}", s.tuning().unwrap())
    };
    assert_eq!(
        tuning(serde_json::json!({"bucket": "assets"})),
        tuning(with_defaults),
        "source's transfer defaults differ from the variables'"
    );
}

//! Running a built binary as people and scripts do, and reading what it printed.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `bin` in `cwd` with `env` on top of the test's environment, less `unset` (the service
/// URL and secret variables a developer's shell may hold).
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)], unset: &[&str], cwd: &Path) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd);
    for var in unset {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

/// Runs `bin` with `env` as its whole environment (and `PATH`), as cron or `env -i` starts it.
pub fn run_env_only(bin: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// stdout, which holds only the answer, as JSON.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Asserts exit 0 (stderr shown otherwise); stdout as JSON.
pub fn ok_json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(out)
}

/// stdout as `T` (a typed result: a renamed or missing field fails here).
pub fn stdout_as<T: serde::de::DeserializeOwned>(out: &Output) -> T {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a {} ({e}): {}\nstderr: {}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The files a command says on stderr it wrote (`label: path` lines naming a path under
/// `dir`), each checked to exist: a printed path is never one that was not written.
pub fn printed_files(out: &Output, dir: &Path) -> Vec<PathBuf> {
    let text = String::from_utf8_lossy(&out.stderr);
    let dir = dir.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(_, path)| path.trim())
        .filter(|path| path.contains(dir.as_ref()))
        .map(|path| {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "printed but not written: {}\n{text}",
                path.display()
            );
            path
        })
        .collect()
}

/// The `{"error": ...}` line on stderr.
pub fn stderr_error(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("{\"error\""))
        .unwrap_or_else(|| panic!("no error JSON on stderr: {text}"));
    serde_json::from_str(line).unwrap()
}

/// Asserts a bad-input exit (2) whose error names `field`.
pub fn assert_refused(out: &Output, field: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stderr_error(out)["error"]["field"], field);
}

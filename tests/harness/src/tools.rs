//! Detection of external test tools (SIPp, openssl, ...). Owns the skip policy: a missing
//! tool skips loudly on a developer machine and fails in CI, where `.ci/run` installs it.

use std::path::Path;

/// Whether an executable named `name` is on `PATH`.
pub fn tool_available(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Returns true when `tool` is installed. Otherwise prints a loud `SKIPPED` banner naming the
/// Debian package and returns false, so the test can return early; but when the `CI`
/// environment variable is set it panics instead, because CI installs every tool and a
/// skipped test there would be a test that cannot fail.
pub fn require_tool(tool: &str, apt_package: &str) -> bool {
    if tool_available(tool) {
        return true;
    }
    let message = format!("SKIPPED: {tool} not installed (apt-get install {apt_package})");
    if std::env::var_os("CI").is_some() {
        panic!("{message}, but CI is set: CI must install it (see .ci/run)");
    }
    let bar = "*".repeat(message.len() + 8);
    eprintln!("\n{bar}\n*** {message} ***\n{bar}\n");
    false
}

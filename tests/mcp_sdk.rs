//! `agent-exec mcp` driven by the official MCP Python SDK: runs
//! tests/mcp_client.py with the interpreter in `AGENT_EXEC_MCP_PYTHON`
//! (else `python3`). Skipped, with a note, when that interpreter cannot
//! `import mcp, jsonschema`; CI sets it to a venv made with
//! `python3 -m venv V && V/bin/pip install mcp jsonschema`.

mod support;

use std::process::{Command, Stdio};

use support::TempRoot;

#[test]
fn the_python_sdk_drives_the_server() {
    let chosen = std::env::var("AGENT_EXEC_MCP_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty());
    let python = chosen.clone().unwrap_or_else(|| "python3".to_string());
    let probe = Command::new(&python)
        .args(["-c", "import mcp, jsonschema"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        // Named on purpose (as CI does): a broken interpreter is a
        // failure, not a silent skip.
        assert!(
            chosen.is_none(),
            "AGENT_EXEC_MCP_PYTHON={python} cannot import mcp and jsonschema"
        );
        eprintln!(
            "note: mcp_sdk skipped: `{python}` cannot import mcp and jsonschema \
             (set AGENT_EXEC_MCP_PYTHON to a venv with `pip install mcp jsonschema`)"
        );
        return;
    }
    let t = TempRoot::new();
    std::fs::create_dir_all(&t.root).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    // The script starts the server with this same private environment.
    let mut c = t.private(&python);
    c.arg(script)
        .arg(support::bin())
        .arg(&t.root)
        .env_remove("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS")
        .env_remove("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS");
    let o = c.output().expect("spawn the Python client");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    print!("{stdout}");
    assert!(
        o.status.success(),
        "mcp_client.py failed ({}):\n{stdout}\n{stderr}",
        o.status
    );
}

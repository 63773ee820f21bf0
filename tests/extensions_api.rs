//! Extensions defined through the admin API (EXT-01, SEC-09) against the real binary: a
//! POST without a password gets a generated 20-character one, which registers with digest
//! authentication; the extension is listed as registered; it survives `kill -9` and a
//! reload; DELETE unbinds it and its credentials stop working, also after another
//! `kill -9`; bad and conflicting requests are refused with 400 and 409.

use std::net::SocketAddr;

use serde_json::{json, Value};
use voxgate_test_harness::{
    config_with_store, extension_tables, http_request, RegisterSession, TestExtension, UdpClient,
    Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const DOMAIN: &str = "voxgate.test";
/// Defined in the config file.
const FILE_EXT: &str = "2000";
/// Defined through the API.
const API_EXT: &str = "2500";

/// `METHOD PATH` with a JSON body on the admin API: (status, parsed body or Null).
fn admin(voxgate: &Voxgate, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, text) = http_request(voxgate.admin(), method, path, bytes.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", voxgate.output()));
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    };
    (status, value)
}

/// The entry for `number` in `GET /api/v1/extensions`, if listed.
fn listed(voxgate: &Voxgate, number: &str) -> Option<Value> {
    let (status, page) = admin(voxgate, "GET", "/api/v1/extensions", None);
    assert_eq!(status, 200, "{page}");
    let list = page["extensions"].as_array().expect("an extensions array");
    assert_eq!(page["count"].as_u64(), Some(list.len() as u64), "{page}");
    for entry in list {
        for secret in ["password", "ha1", "credential"] {
            assert!(entry.get(secret).is_none(), "{secret} listed in {entry}");
        }
    }
    list.iter().find(|e| e["number"] == number).cloned()
}

/// One REGISTER dialogue (401, then credentials) from a fresh UDP socket; the final code.
fn register(voxgate: &Voxgate, number: &str, password: &str) -> u16 {
    let client = UdpClient::bind("127.0.0.1:0".parse().expect("literal address"));
    let source: SocketAddr = client.local_addr();
    let extension = TestExtension {
        number: number.into(),
        password: password.into(),
    };
    let mut session = RegisterSession::new(&extension, DOMAIN, "UDP", source);
    session
        .register_udp(&client, voxgate.udp(), Some(600))
        .unwrap_or_else(|| panic!("REGISTER {number} unanswered:\n{}", voxgate.output()))
        .code
}

#[test]
fn api_extension_lifecycle() {
    let store = tempfile::tempdir().expect("a temp dir can be created");
    let store_path = store.path().join("store");
    let file_ext = TestExtension::numbered(2000);
    assert_eq!(file_ext.number, FILE_EXT);
    let config = config_with_store(
        &["udp:127.0.0.1:0"],
        &store_path,
        &format!(
            "[nat]\nkeepalive_interval = \"1h\"\n\n{}",
            extension_tables(std::slice::from_ref(&file_ext))
        ),
    );
    let mut first = Voxgate::start(BIN, &config);

    // Created without a password: voxgate makes one up and shows it this once.
    let (status, created) = admin(
        &first,
        "POST",
        "/api/v1/extensions",
        Some(json!({ "number": API_EXT, "name": "Carol", "networks": ["127.0.0.0/8"] })),
    );
    assert_eq!(status, 201, "{created}");
    let password = created["password"]
        .as_str()
        .expect("a generated password in the 201")
        .to_owned();
    assert_eq!(password.len(), 20, "{password}");
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["source"], "api");
    assert_eq!(created["auth_id"], API_EXT);
    assert!(
        !first.output().contains(&password),
        "the generated password was logged"
    );

    assert_eq!(register(&first, API_EXT, &password), 200);
    assert_eq!(register(&first, API_EXT, "not-the-password-1"), 403);
    let entry = listed(&first, API_EXT).expect("listed");
    assert_eq!(entry["registered"], true, "{entry}");
    assert_eq!(entry["contacts"], 1, "{entry}");
    assert_eq!(entry["name"], "Carol");
    assert_eq!(entry["networks"], json!(["127.0.0.0/8"]));
    let file_entry = listed(&first, FILE_EXT).expect("file extension listed");
    assert_eq!(file_entry["source"], "config", "{file_entry}");
    assert_eq!(file_entry["registered"], false, "{file_entry}");

    // kill -9 right after: the extension was committed before its 201.
    first.stop_with("KILL");
    let second = Voxgate::start(BIN, &config);
    let entry = listed(&second, API_EXT).expect("still listed after kill -9");
    assert_eq!(entry["source"], "api", "{entry}");
    assert_eq!(
        entry["registered"], true,
        "the binding was restored too: {entry}"
    );
    assert_eq!(register(&second, API_EXT, &password), 200);

    // A reload rebuilds the users from the file: the API's join them again.
    let (status, body) = admin(&second, "POST", "/api/v1/reload", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(register(&second, API_EXT, &password), 200);
    assert_eq!(register(&second, FILE_EXT, &file_ext.password), 200);

    // Refusals.
    let (status, body) = admin(
        &second,
        "POST",
        "/api/v1/extensions",
        Some(json!({ "number": "2600", "password": "abcde" })),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "password", "{body}");
    let (status, body) = admin(
        &second,
        "POST",
        "/api/v1/extensions",
        Some(json!({ "number": FILE_EXT })),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "number", "{body}");
    let (status, body) = admin(
        &second,
        "DELETE",
        &format!("/api/v1/extensions/{FILE_EXT}"),
        None,
    );
    assert_eq!(status, 409, "{body}");
    let message = body["error"].as_str().expect("an error message");
    assert!(
        message.contains("config.toml") && message.contains("remove it there and reload"),
        "{message}"
    );
    let (status, _) = admin(&second, "DELETE", "/api/v1/extensions/2999", None);
    assert_eq!(status, 404);

    // Deleted: its contacts are unbound and its credentials no longer work.
    let (status, body) = admin(
        &second,
        "DELETE",
        &format!("/api/v1/extensions/{API_EXT}"),
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert!(listed(&second, API_EXT).is_none());
    assert!(
        second
            .registrations()
            .iter()
            .all(|r| r.extension != API_EXT),
        "{:?}",
        second.registrations()
    );
    assert_eq!(register(&second, API_EXT, &password), 403);

    // And it stays deleted, bindings included, after another kill -9.
    let mut second = second;
    second.stop_with("KILL");
    let third = Voxgate::start(BIN, &config);
    assert!(listed(&third, API_EXT).is_none());
    assert!(third.registrations().iter().all(|r| r.extension != API_EXT));
    assert_eq!(register(&third, API_EXT, &password), 403);
    assert_eq!(register(&third, FILE_EXT, &file_ext.password), 200);
}

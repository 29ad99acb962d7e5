//! A loopback LDAP wire relay between the service and the DC, for what Samba cannot show or
//! produce by itself: it counts the search requests the client sends (and which carry the
//! paged-results control), records the `attr;range=` selectors they ask for, and can rewrite
//! the result code of chosen responses (to play a Windows DC's codes against real Samba).
//!
//! It reads the LDAP messages in clear, so the service must connect to it with a plain
//! `ldap://` URL ([`super::service::INSECURE_LDAP`]); the relay itself speaks to the DC over
//! plain `ldap://` on the same loopback machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// OID of the paged-results control (RFC 2696), as it appears on the wire.
pub const PAGED_OID: &[u8] = b"1.2.840.113556.1.4.319";

/// `[APPLICATION n]` tags of the LDAP operations (RFC 4511 §4.2–4.9).
pub mod op {
    /// SearchRequest.
    pub const SEARCH_REQUEST: u8 = 0x63;
    /// SearchResultDone.
    pub const SEARCH_DONE: u8 = 0x65;
    /// ModifyResponse.
    pub const MODIFY_RESPONSE: u8 = 0x67;
    /// AddResponse.
    pub const ADD_RESPONSE: u8 = 0x69;
    /// DelResponse.
    pub const DEL_RESPONSE: u8 = 0x6b;
    /// ModifyDNResponse.
    pub const MODDN_RESPONSE: u8 = 0x6d;
}

/// Rewrites the result code of responses of one operation: `from` becomes `to`, for the next
/// `times` matching responses (then the rule is spent).
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Response tag ([`op`]).
    pub response: u8,
    /// Result code as the DC sent it.
    pub from: u8,
    /// Result code the client sees.
    pub to: u8,
    /// How many more responses to rewrite.
    pub times: usize,
}

#[derive(Default)]
struct State {
    /// TCP connections accepted.
    accepted: AtomicUsize,
    searches: AtomicUsize,
    paged: AtomicUsize,
    search_requests: Mutex<Vec<Vec<u8>>>,
    rules: Mutex<Vec<Rewrite>>,
    rewritten: AtomicUsize,
}

/// A running relay (its thread lives as long as the test process; each accepted connection is
/// relayed to the DC until either side closes).
pub struct LdapRelay {
    /// `ldap://127.0.0.1:PORT`, for the service's `[ad] url`.
    pub url: String,
    state: Arc<State>,
}

impl LdapRelay {
    /// Starts relaying to the DC at `upstream_url` (`ldap://HOST[:PORT]`).
    pub fn start(upstream_url: &str) -> LdapRelay {
        let host = upstream_url
            .strip_prefix("ldap://")
            .expect("plain ldap:// URL (the relay reads the messages)");
        let upstream = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:389")
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let (state, upstream) = (Arc::clone(&shared), upstream.clone());
                    tokio::spawn(async move {
                        if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                            relay(client, server, state).await;
                        }
                    });
                }
            });
        });
        LdapRelay { url, state }
    }

    /// TCP connections accepted since the last call.
    pub fn take_connections(&self) -> usize {
        self.state.accepted.swap(0, Ordering::SeqCst)
    }

    /// (search requests, paged search requests) since the last call.
    pub fn take(&self) -> (usize, usize) {
        (
            self.state.searches.swap(0, Ordering::SeqCst),
            self.state.paged.swap(0, Ordering::SeqCst),
        )
    }

    /// How many of the search requests since the last call (of those not yet taken by
    /// [`Self::take_ranges`]) carry `needle` (a search base such as `<SID=…>`, say; an empty
    /// needle counts them all).
    pub fn take_searches_naming(&self, needle: &str) -> usize {
        let requests = std::mem::take(&mut *self.state.search_requests.lock().unwrap());
        requests
            .iter()
            .filter(|m| needle.is_empty() || find(m, needle.as_bytes()).is_some())
            .count()
    }

    /// The `attr;range=LO-HI` selectors (`"LO-HI"`, in request order) of the search requests
    /// since the last call that asked for a range of `attr` (ASCII case-insensitive).
    pub fn take_ranges(&self, attr: &str) -> Vec<String> {
        let requests = std::mem::take(&mut *self.state.search_requests.lock().unwrap());
        let needle = format!("{attr};range=").to_ascii_lowercase().into_bytes();
        let mut out = Vec::new();
        for msg in requests {
            let lower = msg.to_ascii_lowercase();
            let mut at = 0;
            while let Some(i) = find(&lower[at..], &needle) {
                let from = at + i + needle.len();
                let len = lower[from..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || **b == b'-' || **b == b'*')
                    .count();
                out.push(String::from_utf8_lossy(&msg[from..from + len]).into_owned());
                at = from + len;
            }
        }
        out
    }

    /// Adds a result-code rewrite (rules are tried in the order added).
    pub fn rewrite(&self, rule: Rewrite) {
        self.state.rules.lock().unwrap().push(rule);
    }

    /// Drops every rewrite rule that is left; returns how many responses were rewritten since
    /// the last call.
    pub fn take_rewritten(&self) -> usize {
        self.state.rules.lock().unwrap().clear();
        self.state.rewritten.swap(0, Ordering::SeqCst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, state: Arc<State>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up_state = Arc::clone(&state);
    let up = tokio::spawn(pump(cr, sw, move |msg| note_request(&up_state, msg)));
    pump(sr, cw, move |msg| rewrite_response(&state, msg)).await;
    let _ = up.await;
}

/// Copies complete BER messages from `r` to `w`, letting `on_message` inspect or change each
/// one first (in place, same length).
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut on_message: impl FnMut(&mut [u8]) + Send + 'static,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'outer: loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = ber_message_len(&buf) {
            let mut msg: Vec<u8> = buf.drain(..len).collect();
            on_message(&mut msg);
            if w.write_all(&msg).await.is_err() {
                break 'outer;
            }
        }
    }
    let _ = w.shutdown().await;
}

fn note_request(state: &State, msg: &mut [u8]) {
    if protocol_op(msg).map(|(tag, _)| tag) != Some(op::SEARCH_REQUEST) {
        return;
    }
    state.searches.fetch_add(1, Ordering::SeqCst);
    if find(msg, PAGED_OID).is_some() {
        state.paged.fetch_add(1, Ordering::SeqCst);
    }
    state.search_requests.lock().unwrap().push(msg.to_vec());
}

fn rewrite_response(state: &State, msg: &mut [u8]) {
    let Some((tag, body)) = protocol_op(msg) else {
        return;
    };
    // LDAPResult starts with `resultCode ENUMERATED` (0x0a, length 1 for codes below 128).
    if msg.get(body..body + 2) != Some(&[0x0a, 0x01]) {
        return;
    }
    let code = body + 2;
    let mut rules = state.rules.lock().unwrap();
    if let Some(rule) = rules
        .iter_mut()
        .find(|r| r.times > 0 && r.response == tag && r.from == msg[code])
    {
        msg[code] = rule.to;
        rule.times -= 1;
        state.rewritten.fetch_add(1, Ordering::SeqCst);
    }
}

/// (header length, content length) of the BER TLV at the start of `b`, if complete enough.
fn ber_header(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((2, first as usize));
    }
    let n = (first & 0x7f) as usize;
    let bytes = b.get(2..2 + n)?;
    let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
    Some((2 + n, len))
}

/// Length of the first complete BER element in `b`, if all of it has arrived.
fn ber_message_len(b: &[u8]) -> Option<usize> {
    let (h, l) = ber_header(b)?;
    (b.len() >= h + l).then_some(h + l)
}

/// The protocolOp of an LDAPMessage (`SEQUENCE { messageID, protocolOp, controls? }`): its tag
/// and the offset of its content in `msg`.
fn protocol_op(msg: &[u8]) -> Option<(u8, usize)> {
    let (h, _) = ber_header(msg)?;
    let (ih, il) = ber_header(&msg[h..])?;
    let at = h + ih + il;
    let tag = *msg.get(at)?;
    let (oh, _) = ber_header(&msg[at..])?;
    Some((tag, at + oh))
}

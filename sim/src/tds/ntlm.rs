//! The server side of NTLM (MS-NLMP) for Windows authentication: LOGIN7 carries the client's
//! NEGOTIATE message, the server answers with a CHALLENGE in an SSPI token, the client sends its
//! AUTHENTICATE message in an SSPI packet, and the server checks its NTLMv2 response against the
//! one configured domain user.
//!
//! Contract: only NTLMv2 responses are accepted (LM and NTLMv1 are refused, as a hardened domain
//! does). When the client says it sent a message integrity code (MsvAvFlags bit 0x2), the MIC
//! is checked as Windows checks it: HMAC-MD5 under the exported session key (recovered from
//! the encrypted random session key when KEY_EXCH was negotiated) over the three messages.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
const TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// The one Windows account the simulator accepts.
#[derive(Clone, Debug)]
pub struct NtlmUser {
    /// NetBIOS domain name (`CORP`).
    pub domain: String,
    /// User name (`alice`).
    pub user: String,
    /// Password. Never logged.
    pub password: String,
}

impl NtlmUser {
    /// Parses `DOMAIN\user`.
    pub fn parse(qualified: &str, password: String) -> Result<NtlmUser, String> {
        match qualified.split_once('\\') {
            Some((d, u)) if !d.is_empty() && !u.is_empty() => Ok(NtlmUser {
                domain: d.to_string(),
                user: u.to_string(),
                password,
            }),
            _ => Err(format!("'{qualified}' is not DOMAIN\\user")),
        }
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// NTOWFv2 (MS-NLMP 3.3.2).
fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16(password)).into();
    hmac_md5(&nt_hash, &[&utf16(&(user.to_uppercase() + domain))])
}

/// Builds the CHALLENGE message for `domain` with an 8-byte server challenge and a timestamp
/// (Windows FILETIME).
pub fn challenge(domain: &str, server_challenge: [u8; 8], filetime: u64) -> Vec<u8> {
    let target_name = utf16(&domain.to_uppercase());
    let mut info = Vec::new();
    let mut av = |id: u16, value: &[u8]| {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(value.len() as u16).to_le_bytes());
        info.extend_from_slice(value);
    };
    av(2, &target_name); // MsvAvNbDomainName
    av(1, &utf16("MSSQL-SIM")); // MsvAvNbComputerName
    av(4, &utf16(&format!("{}.local", domain.to_lowercase()))); // MsvAvDnsDomainName
    av(3, &utf16("mssql-sim.local")); // MsvAvDnsComputerName
    av(7, &filetime.to_le_bytes()); // MsvAvTimestamp
    av(0, &[]); // MsvAvEOL
    let flags = NEGOTIATE_UNICODE
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | ALWAYS_SIGN
        | TARGET_TYPE_DOMAIN
        | EXTENDED_SESSION_SECURITY
        | TARGET_INFO
        | NEGOTIATE_VERSION
        | NEGOTIATE_128
        | KEY_EXCH
        | NEGOTIATE_56;
    let header = 56usize;
    let mut m = Vec::with_capacity(header + target_name.len() + info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    let field = |m: &mut Vec<u8>, len: usize, offset: usize| {
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
    };
    field(&mut m, target_name.len(), header);
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&server_challenge);
    m.extend_from_slice(&[0; 8]);
    field(&mut m, info.len(), header + target_name.len());
    m.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 15]); // version 10.0.17763, NTLM rev 15
    m.extend_from_slice(&target_name);
    m.extend_from_slice(&info);
    m
}

/// Checks a NEGOTIATE message's framing.
pub fn check_negotiate(msg: &[u8]) -> Result<(), String> {
    if msg.len() < 16 || &msg[..8] != SIGNATURE || msg[8..12] != 1u32.to_le_bytes() {
        return Err("the integrated-security data is not an NTLM NEGOTIATE message".into());
    }
    Ok(())
}

fn payload(msg: &[u8], at: usize) -> Result<&[u8], String> {
    let f = msg
        .get(at..at + 8)
        .ok_or("AUTHENTICATE message truncated")?;
    let len = u16::from_le_bytes([f[0], f[1]]) as usize;
    let off = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
    msg.get(off..off + len)
        .ok_or_else(|| "AUTHENTICATE field outside the message".to_string())
}

/// The account an AUTHENTICATE message claims (`DOMAIN\user`), for messages.
pub fn claimed(msg: &[u8]) -> String {
    let text = |at| {
        payload(msg, at)
            .map(crate::tds::login::utf16le)
            .unwrap_or_default()
    };
    format!("{}\\{}", text(28), text(36))
}

/// The messages of one NTLM exchange before the AUTHENTICATE message.
pub struct Exchange<'a> {
    /// The client's NEGOTIATE message.
    pub negotiate: &'a [u8],
    /// The CHALLENGE message the server sent.
    pub challenge: &'a [u8],
    /// The server challenge inside it.
    pub server_challenge: &'a [u8; 8],
}

/// The AV pairs of an NTLMv2 client blob (after its 28-byte fixed part): id and value.
fn av_pairs(blob: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 28;
    while let Some(h) = blob.get(at..at + 4) {
        let id = u16::from_le_bytes([h[0], h[1]]);
        let len = u16::from_le_bytes([h[2], h[3]]) as usize;
        if id == 0 {
            break;
        }
        let Some(v) = blob.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((id, v));
        at += 4 + len;
    }
    out
}

/// Where the MIC sits in an AUTHENTICATE message (after the fields and the version).
const MIC_AT: usize = 72;

/// Checks the MIC when the client's blob announces one (MS-NLMP 3.2.5.1.2 and 3.3.2).
fn check_mic(
    msg: &[u8],
    exchange: &Exchange,
    session_base_key: &[u8; 16],
    blob: &[u8],
) -> Result<(), String> {
    let has_mic = av_pairs(blob).iter().any(|(id, v)| {
        *id == 6 && v.len() == 4 && u32::from_le_bytes([v[0], v[1], v[2], v[3]]) & 0x2 != 0
    });
    if !has_mic {
        return Ok(());
    }
    let flags = msg
        .get(60..64)
        .map(|f| u32::from_le_bytes([f[0], f[1], f[2], f[3]]))
        .ok_or("AUTHENTICATE message truncated")?;
    // NTLMv2: the key exchange key is the session base key.
    let mut exported = *session_base_key;
    if flags & KEY_EXCH != 0 {
        let encrypted = payload(msg, 52)?;
        if encrypted.len() != 16 {
            return Err("the encrypted random session key is not 16 bytes".into());
        }
        use rc4::{consts::U16, KeyInit, StreamCipher};
        exported.copy_from_slice(encrypted);
        rc4::Rc4::<U16>::new(session_base_key.into()).apply_keystream(&mut exported);
    }
    let mic = msg
        .get(MIC_AT..MIC_AT + 16)
        .ok_or("AUTHENTICATE message has no room for a MIC")?;
    let mut zeroed = msg.to_vec();
    zeroed[MIC_AT..MIC_AT + 16].fill(0);
    let expected = hmac_md5(
        &exported,
        &[exchange.negotiate, exchange.challenge, &zeroed],
    );
    if expected.as_slice() != mic {
        return Err("the message integrity code does not match".into());
    }
    Ok(())
}

/// Verifies an AUTHENTICATE message against `account` and the exchange before it: the NTLMv2
/// response, then the MIC when the client sent one.
pub fn verify(msg: &[u8], exchange: &Exchange, account: &NtlmUser) -> Result<(), String> {
    if msg.len() < 64 || &msg[..8] != SIGNATURE || msg[8..12] != 3u32.to_le_bytes() {
        return Err("not an NTLM AUTHENTICATE message".into());
    }
    let nt = payload(msg, 20)?;
    let domain = crate::tds::login::utf16le(payload(msg, 28)?);
    let user = crate::tds::login::utf16le(payload(msg, 36)?);
    if !domain.eq_ignore_ascii_case(&account.domain) || !user.eq_ignore_ascii_case(&account.user) {
        return Err("unknown account".into());
    }
    if nt.len() <= 24 {
        return Err("only NTLMv2 responses are accepted".into());
    }
    let (proof, blob) = nt.split_at(16);
    // The client hashes the domain as it typed it and the user upper-cased.
    let key = ntowf_v2(&account.password, &user, &domain);
    let expected = hmac_md5(&key, &[exchange.server_challenge, blob]);
    if expected.as_slice() != proof {
        return Err("wrong password".into());
    }
    check_mic(msg, exchange, &hmac_md5(&key, &[proof]), blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP 4.2.4.1.1: NTOWFv2 of User / Domain / Password.
    #[test]
    fn ntowf_v2_matches_the_specification_example() {
        let k = ntowf_v2("Password", "User", "Domain");
        assert_eq!(
            k,
            [
                0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0,
                0x2e, 0x3f
            ]
        );
    }

    #[test]
    fn challenge_carries_the_domain_and_the_challenge() {
        let c = challenge("corp", [1, 2, 3, 4, 5, 6, 7, 8], 42);
        assert_eq!(&c[..8], SIGNATURE);
        assert_eq!(&c[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let name_len = u16::from_le_bytes([c[12], c[13]]) as usize;
        assert_eq!(crate::tds::login::utf16le(&c[56..56 + name_len]), "CORP");
    }

    /// One exchange recorded from tiberius (the `sspi` crate's NTLM, which sends a MIC), for
    /// `CORP\alice` / `W1ndows-Pass`.
    fn recorded() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let hex = |parts: &[&str]| -> Vec<u8> {
            let s: String = parts.concat();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let negotiate = hex(&[
            "4e544c4d5353500001000000b78208e2000000002800000000000000280000000a0063450000000f",
        ]);
        let challenge = hex(&[
        "4e544c4d53535000020000000800080038000000058289e24da2fd3e50af5af800000000000000006c006c00",
        "400000000a0063450000000f43004f00520050000200080043004f0052005000010012004d00530053005100",
        "4c002d00530049004d000400140063006f00720070002e006c006f00630061006c0003001e006d0073007300",
        "71006c002d00730069006d002e006c006f00630061006c0007000800f15a413ec27cdd0100000000",
        ]);
        let authenticate = hex(&[
        "4e544c4d5353500003000000180018006a000000a400a4008200000008000800580000000a000a0060000000",
        "000000006a0000001000100026010000359288e20a0063450000000f37a8123ac26414a2e097eec90785ad90",
        "43004f005200500061006c00690063006500f74153ff8757f4d30c62bd6015de96decc2c4813c64aa5819bd0",
        "091393d7dcdada603a6b6b7557d20101000000000000f15a413ec27cdd01cc2c4813c64aa581000000000200",
        "080043004f0052005000010012004d005300530051004c002d00530049004d000400140063006f0072007000",
        "2e006c006f00630061006c0003001e006d007300730071006c002d00730069006d002e006c006f0063006100",
        "6c0007000800f15a413ec27cdd01060004000200000000000000000000006b41cc122552cad86b7aa169bc1a",
        "2fb4",
        ]);
        (negotiate, challenge, authenticate)
    }

    #[test]
    fn a_real_clients_mic_is_checked() {
        let (negotiate, challenge, authenticate) = recorded();
        let server_challenge: [u8; 8] = challenge[24..32].try_into().unwrap();
        let account = NtlmUser::parse("CORP\\alice", "W1ndows-Pass".into()).unwrap();
        let check = |neg: &[u8], auth: &[u8]| {
            verify(
                auth,
                &Exchange {
                    negotiate: neg,
                    challenge: &challenge,
                    server_challenge: &server_challenge,
                },
                &account,
            )
        };
        assert_eq!(check(&negotiate, &authenticate), Ok(()));
        // A changed MIC, or a NEGOTIATE message altered on the way (a downgrade), is refused
        // although the NTLMv2 response itself is right.
        let mut bad_mic = authenticate.clone();
        bad_mic[MIC_AT] ^= 1;
        let mut bad_negotiate = negotiate.clone();
        bad_negotiate[12] ^= 0x10;
        for (neg, auth) in [(&negotiate, &bad_mic), (&bad_negotiate, &authenticate)] {
            assert_eq!(
                check(neg, auth),
                Err("the message integrity code does not match".to_string())
            );
        }
    }
}

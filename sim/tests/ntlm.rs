//! Windows authentication: tiberius's NTLM client (the `sspi` crate) against the simulator's
//! NTLMv2 check of one configured domain user.

use crate::common::*;
use mssql_sim::server::SimServer;
use mssql_sim::tds::ntlm::NtlmUser;
use tiberius::AuthMethod;

async fn ntlm_sim(hint: &str) -> SimServer {
    let account = NtlmUser::parse("CORP\\alice", "W1ndows-Pass".into()).unwrap();
    sim_configured(hint, |c| c.ntlm = Some(account)).await.0
}

async fn connect_windows(s: &SimServer, user: &str, password: &str) -> tiberius::Result<Tds> {
    let mut c = config(s, SA_PASSWORD, None);
    c.authentication(AuthMethod::windows(user, password));
    connect_config(c).await
}

#[tokio::test]
async fn the_configured_domain_user_logs_in_and_others_are_refused() {
    let s = ntlm_sim("ntlm").await;
    let mut c = connect_windows(&s, "CORP\\alice", "W1ndows-Pass")
        .await
        .expect("NTLM login of the configured user");
    let v = rows(&mut c, "SELECT 6 * 7").await;
    assert_eq!(v[0].get::<i32, _>(0), Some(42));
    // Case does not matter in Windows account names.
    connect_windows(&s, "corp\\ALICE", "W1ndows-Pass")
        .await
        .expect("account names are case-insensitive");
    for (user, password) in [
        ("CORP\\alice", "wrong"),
        ("CORP\\bob", "W1ndows-Pass"),
        ("OTHER\\alice", "W1ndows-Pass"),
    ] {
        let Err(e) = connect_windows(&s, user, password).await else {
            panic!("{user} with that password must be refused");
        };
        let text = e.to_string();
        assert!(text.contains("Login failed"), "{user}: {text}");
        assert!(!text.contains(password), "the password is never echoed");
    }
    // SQL logins still work beside it.
    connect(&s).await;
}

//! Splits a T-SQL batch into statements.
//!
//! sqlparser (MsSqlDialect) parses queries, DML and most DDL; the statements that change session
//! state (transactions, variables, SET options, USE) and the forms sqlparser does not know
//! (SAVE TRAN, ALTER COLUMN, CLUSTERED indexes, CHANGETABLE, ALTER DATABASE ... CHANGE_TRACKING)
//! are recognised here first. Like SQL Server, a syntax error anywhere fails the whole batch
//! before anything runs.

use crate::types::TsqlType;
use sqlparser::ast::{DataType, Expr, ObjectName, Statement};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

/// Transaction isolation levels a session can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// READ UNCOMMITTED (runs as READ COMMITTED).
    ReadUncommitted,
    /// READ COMMITTED (the default).
    ReadCommitted,
    /// REPEATABLE READ.
    RepeatableRead,
    /// SNAPSHOT: the transaction sees the database as of its start.
    Snapshot,
    /// SERIALIZABLE.
    Serializable,
}

/// One statement of a batch.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// A statement for the rewriter (queries, DML, DDL sqlparser knows).
    Sql(Box<Statement>),
    /// BEGIN TRAN [name].
    BeginTran,
    /// COMMIT [TRAN].
    Commit,
    /// ROLLBACK [TRAN] [name]: a savepoint name rolls back to it, otherwise everything.
    Rollback(Option<String>),
    /// SAVE TRAN name.
    Save(String),
    /// SET TRANSACTION ISOLATION LEVEL.
    SetIsolation(Isolation),
    /// SET NOCOUNT ON|OFF.
    SetNoCount(bool),
    /// SET XACT_ABORT ON|OFF.
    SetXactAbort(bool),
    /// SET IDENTITY_INSERT table ON|OFF.
    SetIdentityInsert(ObjectName, bool),
    /// Any other SET option: accepted and ignored, as harmless for the simulation.
    SetOption(String),
    /// DECLARE @a type [= expr], ...
    Declare(Vec<(String, DataType, Option<Expr>)>),
    /// SET @a = expr (op is `=`, `+=`, ...).
    SetVar(String, String, Expr),
    /// USE db.
    Use(String),
    /// CREATE DATABASE name.
    CreateDatabase(String),
    /// DROP DATABASE name.
    DropDatabase(String),
    /// ALTER DATABASE name SET option tokens.
    AlterDatabase(String, Vec<String>),
    /// ALTER TABLE t ALTER COLUMN c type [NULL | NOT NULL].
    AlterColumn {
        table: ObjectName,
        column: String,
        ty: DataType,
        nullable: Option<bool>,
    },
    /// ALTER TABLE t ENABLE|DISABLE CHANGE_TRACKING [WITH (TRACK_COLUMNS_UPDATED = ON|OFF)].
    TableChangeTracking {
        table: ObjectName,
        enable: bool,
        track_columns: bool,
    },
    /// CREATE [UNIQUE] [CLUSTERED|NONCLUSTERED] INDEX name ON t (cols) [INCLUDE (cols)]
    /// [WHERE predicate].
    CreateIndex {
        name: String,
        table: ObjectName,
        unique: bool,
        clustered: bool,
        columns: Vec<(String, bool)>,
        include: Vec<String>,
        /// A filtered index's `WHERE` predicate.
        filter: Option<Expr>,
    },
    /// ALTER SEQUENCE name RESTART [WITH n].
    RestartSequence {
        name: ObjectName,
        value: Option<Expr>,
    },
    /// DBCC CHECKIDENT ('table', RESEED, n) [WITH NO_INFOMSGS].
    Reseed { table: String, value: Expr },
    /// EXEC (expr): the string's statements run as a batch of their own (dynamic SQL).
    ExecString(Expr),
    /// EXEC proc [@name =] arg, ...
    Exec {
        proc: ObjectName,
        args: Vec<(Option<String>, Expr)>,
    },
    /// IF cond stmt [ELSE stmt].
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// PRINT expr.
    Print(Expr),
    /// WITH CHANGE_TRACKING_CONTEXT (expr) followed by the DML statement it applies to.
    WithChangeTrackingContext(Expr, Box<Stmt>),
    /// CREATE [OR ALTER] TRIGGER name ON table AFTER|FOR events AS [BEGIN] [IF SESSION_CONTEXT(N'k')
    /// = v RETURN;] THROW n, 'msg', s [END]: the one trigger body the simulator runs (a write
    /// fence, with the sessions it lets pass).
    CreateTrigger {
        name: ObjectName,
        table: ObjectName,
        or_alter: bool,
        events: Vec<String>,
        number: i32,
        message: String,
        state: i32,
        /// `IF SESSION_CONTEXT(N'key') = value RETURN` before the THROW: (key, value).
        bypass: Option<(String, String)>,
    },
    /// DROP TRIGGER [IF EXISTS] name, ...
    DropTrigger {
        names: Vec<ObjectName>,
        if_exists: bool,
    },
    /// ALTER TABLE t [WITH CHECK | WITH NOCHECK] {CHECK | NOCHECK} CONSTRAINT {ALL | name, ...}:
    /// foreign keys checked or not from now on (`names` none: all).
    ConstraintChecking {
        table: ObjectName,
        enable: bool,
        names: Option<Vec<String>>,
    },
    /// CREATE [OR ALTER] PROCEDURE | FUNCTION: the whole batch is the module. Its text is kept
    /// for catalog readers; the simulator runs no procedural bodies.
    CreateModule {
        /// `P` or `FN`.
        kind: &'static str,
        name: ObjectName,
        or_alter: bool,
        text: String,
    },
    /// CREATE [OR ALTER] VIEW (alone in its batch, as SQL Server requires) and the batch's text,
    /// kept for sys.sql_modules and INFORMATION_SCHEMA.VIEWS.
    CreateView(Box<Statement>, String),
    /// CREATE TRIGGER with a body the simulator cannot run: stored with its text, disabled.
    StoredTrigger {
        name: ObjectName,
        table: ObjectName,
        or_alter: bool,
        events: Vec<String>,
        text: String,
    },
    /// CREATE TYPE name FROM base [NULL | NOT NULL].
    CreateAliasType {
        name: ObjectName,
        base: String,
        nullable: bool,
    },
    /// RAISERROR / THROW: message, severity, state.
    Raise {
        message: Expr,
        severity: i32,
        state: i32,
    },
}

/// A batch that failed to parse: SQL Server's error 102 with the offending text.
#[derive(Debug, thiserror::Error)]
#[error("Incorrect syntax near '{near}'. ({detail})")]
pub struct SyntaxError {
    /// The token where parsing failed.
    pub near: String,
    /// sqlparser's message.
    pub detail: String,
    /// 1-based line of the failing token.
    pub line: u64,
}

fn syntax(p: &Parser<'_>, e: ParserError) -> SyntaxError {
    let t = p.peek_token();
    let near = match &t.token {
        Token::EOF => "end of batch".into(),
        other => other.to_string(),
    };
    SyntaxError {
        near,
        detail: e.to_string(),
        line: t.span.start.line.max(1),
    }
}

fn word_is(t: &Token, s: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s))
}

/// Rewrites the token forms sqlparser cannot parse into forms it can:
/// `CHANGETABLE(CHANGES t, v)` becomes `CHANGETABLE('CHANGES', 't', v)` and
/// `CHANGETABLE(VERSION t, (c...), (v...))` becomes `CHANGETABLE('VERSION', 't', ...)`.
fn pre_pass(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let non_ws: Vec<usize> = (0..tokens.len())
        .filter(|&k| !matches!(tokens[k].token, Token::Whitespace(_)))
        .collect();
    let next_non_ws = |k: usize| non_ws.iter().copied().find(|&x| x > k);
    while i < tokens.len() {
        let t = &tokens[i];
        if word_is(&t.token, "CHANGETABLE") {
            if let Some(lp) = next_non_ws(i) {
                if tokens[lp].token == Token::LParen {
                    if let Some(kind) = next_non_ws(lp) {
                        if word_is(&tokens[kind].token, "CHANGES")
                            || word_is(&tokens[kind].token, "VERSION")
                        {
                            // Collect the object name tokens up to the next comma.
                            let mut j = kind + 1;
                            let mut name = String::new();
                            while j < tokens.len() && tokens[j].token != Token::Comma {
                                name.push_str(&name_token_text(&tokens[j].token));
                                j += 1;
                            }
                            out.push(t.clone());
                            out.push(tokens[lp].clone());
                            let kind_text = match &tokens[kind].token {
                                Token::Word(w) => w.value.to_uppercase(),
                                _ => String::new(),
                            };
                            out.push(TokenWithSpan::wrap(Token::SingleQuotedString(kind_text)));
                            out.push(TokenWithSpan::wrap(Token::Comma));
                            out.push(TokenWithSpan::wrap(Token::SingleQuotedString(
                                name.trim().to_string(),
                            )));
                            i = j;
                            continue;
                        }
                    }
                }
            }
        }
        // NEXT VALUE FOR seq: a function call the rewriter knows, `next_value_for('seq')`.
        if word_is(&t.token, "NEXT") {
            let sig: Vec<usize> = (i + 1..tokens.len())
                .filter(|&k| !matches!(tokens[k].token, Token::Whitespace(_)))
                .take(2)
                .collect();
            if sig.len() == 2
                && word_is(&tokens[sig[0]].token, "VALUE")
                && word_is(&tokens[sig[1]].token, "FOR")
            {
                let mut j = sig[1] + 1;
                while j < tokens.len() && matches!(tokens[j].token, Token::Whitespace(_)) {
                    j += 1;
                }
                let mut name = String::new();
                while j < tokens.len() {
                    match &tokens[j].token {
                        Token::Word(_) | Token::Period => {
                            name.push_str(&name_token_text(&tokens[j].token))
                        }
                        _ => break,
                    }
                    j += 1;
                }
                out.push(TokenWithSpan::new(
                    Token::make_word("next_value_for", None),
                    t.span,
                ));
                out.push(TokenWithSpan::new(Token::LParen, t.span));
                out.push(TokenWithSpan::new(Token::SingleQuotedString(name), t.span));
                out.push(TokenWithSpan::new(Token::RParen, t.span));
                i = j;
                continue;
            }
        }
        // Static methods of the spatial types: `geography::Point(...)` becomes the function
        // call `geography__point(...)` the rewriter knows (sqlparser reads `::` as a cast).
        if word_is(&t.token, "geography") || word_is(&t.token, "geometry") {
            let sig: Vec<usize> = (i + 1..tokens.len())
                .filter(|&k| !matches!(tokens[k].token, Token::Whitespace(_)))
                .take(2)
                .collect();
            if let [colons, method] = sig[..] {
                if let (Token::DoubleColon, Token::Word(m), Token::Word(ty)) =
                    (&tokens[colons].token, &tokens[method].token, &t.token)
                {
                    let name = format!("{}__{}", ty.value, m.value).to_lowercase();
                    out.push(TokenWithSpan::new(Token::make_word(&name, None), t.span));
                    i = method + 1;
                    continue;
                }
            }
        }
        // Money literals: `$12.50` tokenizes as a placeholder (sometimes `$12` and `.50`).
        if let Token::Placeholder(ph) = &t.token {
            let digits = ph.get(1..).unwrap_or("");
            let numeric = digits.parse::<f64>().is_ok() && !digits.contains(['e', 'E', '+', '-']);
            if ph.starts_with('$') && numeric {
                let mut n = digits.to_string();
                if let Some(Token::Number(frac, _)) = tokens.get(i + 1).map(|x| &x.token) {
                    if frac.starts_with('.') {
                        n.push_str(frac);
                        i += 1;
                    }
                }
                out.push(TokenWithSpan::new(Token::Number(n, false), t.span));
                i += 1;
                continue;
            }
        }
        let mut t = t.clone();
        // [a]]b] prints unescaped through sqlparser; "a]b" prints escaped and means the same.
        if let Token::Word(w) = &mut t.token {
            if w.quote_style == Some('[') {
                w.quote_style = Some('"');
            }
        }
        out.push(t);
        i += 1;
    }
    insert_into(computed_columns(repeat_add_in_alter_table(
        insert_statement_breaks(without_filegroups(out)),
    )))
}

/// Storage clauses have no meaning here: `ON [PRIMARY]` and `TEXTIMAGE_ON [PRIMARY]` after a
/// closing parenthesis (a table's column list, an index's, a constraint's WITH options) are
/// dropped.
///
/// Also `PRIMARY KEY CLUSTERED` / `UNIQUE NONCLUSTERED` in constraints: the word is dropped
/// (PostgreSQL has no clustered index; `CREATE ... CLUSTERED INDEX` keeps it).
fn without_filegroups(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let prev = out
            .iter()
            .rev()
            .find(|x| !matches!(x.token, Token::Whitespace(_)))
            .map(|x| &x.token);
        let next =
            (i + 1..tokens.len()).find(|&k| !matches!(tokens[k].token, Token::Whitespace(_)));
        let next_is = |w: &str| next.is_some_and(|k| word_is(&tokens[k].token, w));
        let clustered = word_is(&t.token, "CLUSTERED") || word_is(&t.token, "NONCLUSTERED");
        if clustered
            && prev.is_some_and(|p| word_is(p, "KEY") || word_is(p, "UNIQUE"))
            && !next_is("INDEX")
        {
            i += 1;
            continue;
        }
        let storage = word_is(&t.token, "ON") || word_is(&t.token, "TEXTIMAGE_ON");
        // The filegroup may be written PRIMARY, [PRIMARY] or "PRIMARY".
        let primary = next.is_some_and(
            |k| matches!(&tokens[k].token, Token::Word(w) if w.value.eq_ignore_ascii_case("PRIMARY")),
        );
        if storage && primary && prev == Some(&Token::RParen) {
            i = next.map_or(tokens.len(), |k| k + 1);
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// T-SQL's INTO is optional (`INSERT t VALUES ...`, `INSERT "Order Details" (...) ...`);
/// sqlparser wants it. Added after an INSERT that starts a statement and is followed by a name
/// (not in a trigger's `FOR INSERT, UPDATE`).
fn insert_into(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&k| !matches!(tokens[k].token, Token::Whitespace(_)))
        .collect();
    let mut add_after = std::collections::HashSet::new();
    for (n, &k) in sig.iter().enumerate() {
        if !word_is(&tokens[k].token, "INSERT") {
            continue;
        }
        let prev = n.checked_sub(1).map(|p| &tokens[sig[p]].token);
        let in_trigger = prev.is_some_and(|t| {
            *t == Token::Comma
                || ["FOR", "AFTER", "OF", "INSTEAD"]
                    .iter()
                    .any(|w| word_is(t, w))
        });
        let next_is_name = sig.get(n + 1).is_some_and(|&x| match &tokens[x].token {
            Token::Word(w) if w.quote_style.is_some() => true,
            Token::Word(w) => ![
                "INTO", "AS", "UPDATE", "DELETE", "NOT", "ON", "INSERT", "EXEC", "EXECUTE",
                "SELECT", "VALUES", "DEFAULT",
            ]
            .iter()
            .any(|k| w.value.eq_ignore_ascii_case(k)),
            _ => false,
        });
        if !in_trigger && next_is_name {
            add_after.insert(k);
        }
    }
    if add_after.is_empty() {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + 2 * add_after.len());
    for (k, t) in tokens.into_iter().enumerate() {
        let span = t.span;
        out.push(t);
        if add_after.contains(&k) {
            out.push(TokenWithSpan::new(
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                span,
            ));
            out.push(TokenWithSpan::new(Token::make_keyword("INTO"), span));
        }
    }
    out
}

/// The placeholder type a computed column gets from [`computed_columns`]; the catalog replaces
/// it with the expression's type.
pub const COMPUTED_TYPE: &str = "__computed";

/// T-SQL computed columns (`name AS expr [PERSISTED]`) have no type, which sqlparser requires:
/// each becomes `name __computed GENERATED ALWAYS AS (expr) [STORED]` (STORED for PERSISTED), in
/// a CREATE TABLE column list and after ALTER TABLE ... ADD.
fn computed_columns(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&k| !matches!(tokens[k].token, Token::Whitespace(_)))
        .collect();
    // Positions (in `sig`) where a column definition may start.
    let mut starts = std::collections::HashSet::new();
    let mut k = 0;
    while k < sig.len() {
        let tok = |j: usize| sig.get(j).map(|&x| &tokens[x].token);
        let is = |j: usize, w: &str| tok(j).is_some_and(|t| word_is(t, w));
        if is(k, "CREATE") && is(k + 1, "TABLE") {
            // Skip the name to the column list's parenthesis.
            let mut j = k + 2;
            while tok(j).is_some_and(|t| *t != Token::LParen && *t != Token::SemiColon) {
                j += 1;
            }
            if tok(j) == Some(&Token::LParen) {
                let mut depth = 0;
                while let Some(t) = tok(j) {
                    match t {
                        Token::LParen => {
                            depth += 1;
                            if depth == 1 {
                                starts.insert(j + 1);
                            }
                        }
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Token::Comma if depth == 1 => {
                            starts.insert(j + 1);
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            k = j;
        } else if is(k, "ADD") {
            starts.insert(k + 1);
        }
        k += 1;
    }
    let mut out = Vec::with_capacity(tokens.len() + 8);
    let mut i = 0; // index into `sig`
    let mut copied = 0; // tokens[..copied] are in `out`
    while i < sig.len() {
        let computed = starts.contains(&i)
            && matches!(tokens[sig[i]].token, Token::Word(_))
            && sig
                .get(i + 1)
                .is_some_and(|&x| word_is(&tokens[x].token, "AS"));
        if !computed {
            i += 1;
            continue;
        }
        // Copy up to and including the column name, then the placeholder type.
        out.extend(tokens[copied..=sig[i]].iter().cloned());
        let span = tokens[sig[i]].span;
        let word = |w: &str| TokenWithSpan::new(Token::make_word(w, None), span);
        let space = || {
            TokenWithSpan::new(
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                span,
            )
        };
        for t in [
            space(),
            word(COMPUTED_TYPE),
            space(),
            word("GENERATED"),
            space(),
            word("ALWAYS"),
            space(),
            word("AS"),
            space(),
        ] {
            out.push(t);
        }
        out.push(TokenWithSpan::new(Token::LParen, span));
        // The expression: up to a top-level comma or closing parenthesis, or a word that starts
        // the column's options.
        let mut j = i + 2;
        let mut depth = 0;
        let mut end_expr = sig.get(j).copied().unwrap_or(tokens.len());
        while let Some(&x) = sig.get(j) {
            let t = &tokens[x].token;
            let stop = match t {
                Token::LParen => {
                    depth += 1;
                    false
                }
                Token::RParen if depth == 0 => true,
                Token::RParen => {
                    depth -= 1;
                    false
                }
                Token::Comma | Token::SemiColon if depth == 0 => true,
                _ if depth == 0 => [
                    "PERSISTED",
                    "CONSTRAINT",
                    "PRIMARY",
                    "UNIQUE",
                    "FOREIGN",
                    "REFERENCES",
                    "CHECK",
                ]
                .iter()
                .any(|w| word_is(t, w)),
                _ => false,
            };
            if stop {
                end_expr = x;
                break;
            }
            j += 1;
            end_expr = tokens.len();
        }
        out.extend(tokens[sig[i + 1] + 1..end_expr].iter().cloned());
        out.push(TokenWithSpan::new(Token::RParen, span));
        copied = end_expr;
        i = j;
        if sig
            .get(j)
            .is_some_and(|&x| word_is(&tokens[x].token, "PERSISTED"))
        {
            out.push(space());
            out.push(word("STORED"));
            copied = sig[j] + 1;
            i = j + 1;
        }
    }
    out.extend(tokens[copied..].iter().cloned());
    out
}

/// T-SQL lists several columns after one ADD (`ALTER TABLE t ADD a int, b int`); sqlparser wants
/// `ADD` before each. Inserts it after every top-level comma of an ALTER TABLE ... ADD list.
fn repeat_add_in_alter_table(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut recent: Vec<Token> = Vec::new(); // significant tokens of the current statement
    let mut in_add_list = false;
    let mut depth = 0i32;
    for t in tokens {
        let significant = !matches!(t.token, Token::Whitespace(_));
        match &t.token {
            Token::SemiColon => {
                in_add_list = false;
                recent.clear();
            }
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if significant && !matches!(t.token, Token::SemiColon) {
            if in_add_list
                && depth == 0
                && !matches!(recent.last(), Some(Token::Comma))
                && starts_statement(&t.token)
                && !word_is(&t.token, "ADD")
            {
                in_add_list = false;
                recent.clear();
            }
            recent.push(t.token.clone());
            if !in_add_list
                && word_is(&t.token, "ADD")
                && recent.len() >= 4
                && word_is(&recent[0], "ALTER")
                && word_is(&recent[1], "TABLE")
            {
                in_add_list = true;
            }
        }
        let comma = in_add_list && depth == 0 && t.token == Token::Comma;
        let span = t.span;
        out.push(t);
        if comma {
            out.push(TokenWithSpan::new(
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                span,
            ));
            out.push(TokenWithSpan::new(Token::make_keyword("ADD"), span));
        }
    }
    out
}

/// Words that can only start a statement. T-SQL needs no `;` between statements, and sqlparser
/// would otherwise read `SELECT 1 BEGIN TRAN` as a column alias.
const STATEMENT_ONLY: &[&str] = &[
    "CHECKPOINT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVE",
    "DECLARE",
    "PRINT",
    "USE",
    "GO",
    "RAISERROR",
    "THROW",
    "WHILE",
    "RETURN",
];

fn insert_statement_breaks(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len() + 4);
    let mut depth = 0i32;
    let mut prev: Option<Token> = None;
    for t in tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w)
                if depth == 0
                    && w.quote_style.is_none()
                    && STATEMENT_ONLY
                        .iter()
                        .any(|k| w.value.eq_ignore_ascii_case(k)) =>
            {
                let after_with =
                    matches!(&prev, Some(Token::Word(p)) if p.value.eq_ignore_ascii_case("WITH"));
                if prev.is_some() && prev != Some(Token::SemiColon) && !after_with {
                    out.push(TokenWithSpan::new(Token::SemiColon, t.span));
                }
            }
            _ => {}
        }
        if !matches!(t.token, Token::Whitespace(_)) {
            prev = Some(t.token.clone());
        }
        out.push(t);
    }
    out
}

fn name_token_text(t: &Token) -> String {
    match t {
        Token::Word(Word {
            value,
            quote_style: Some('['),
            ..
        }) => format!("[{}]", value.replace(']', "]]")),
        Token::Word(Word {
            value,
            quote_style: Some('"'),
            ..
        }) => format!("[{}]", value.replace(']', "]]")),
        Token::Whitespace(_) => String::new(),
        other => other.to_string(),
    }
}

/// Parses a whole batch into statements.
///
/// Never panics: a panic inside the parser (sqlparser asserts on some inputs) becomes error 102
/// like any other batch that cannot be parsed.
pub fn parse_batch(sql: &str) -> Result<Vec<Stmt>, SyntaxError> {
    std::panic::catch_unwind(|| {
        parse_batch_inner(sql).or_else(|e| {
            // A batch that starts with a bare name runs that procedure (`sp_who`, `proc 1, 2`).
            let first = Tokenizer::new(&MsSqlDialect {}, sql)
                .tokenize()
                .ok()
                .and_then(|t| t.into_iter().find(|t| !matches!(t, Token::Whitespace(_))));
            match first {
                Some(Token::Word(w))
                    if !starts_statement(&Token::Word(w.clone()))
                        && w.keyword == Keyword::NoKeyword =>
                {
                    parse_batch_inner(&format!("EXEC {sql}")).map_err(|_| e)
                }
                _ => Err(e),
            }
        })
    })
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(SyntaxError {
            near: "the batch".into(),
            detail: format!("the parser gave up: {what}"),
            line: 1,
        })
    })
}

fn parse_batch_inner(sql: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let dialect = MsSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SyntaxError {
            near: e.message.clone(),
            detail: e.to_string(),
            line: e.location.line,
        })?;
    if let Some(m) = create_module(sql, &tokens)? {
        return Ok(vec![m]);
    }
    let tokens = pre_pass(tokens);
    let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut out = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token == Token::EOF {
            break;
        }
        if word_is(&p.peek_token().token, "GO") {
            p.next_token();
            continue;
        }
        let s = parse_one(&mut p).map_err(|e| syntax(&p, e))?;
        // A trigger is the whole batch (SQL Server requires it to be alone in it).
        if let Stmt::StoredTrigger {
            name,
            table,
            or_alter,
            events,
            ..
        } = s
        {
            return Ok(vec![Stmt::StoredTrigger {
                name,
                table,
                or_alter,
                events,
                text: sql.trim().to_string(),
            }]);
        }
        out.push(s);
    }
    if let [Stmt::Sql(stmt)] = out.as_slice() {
        if matches!(stmt.as_ref(), Statement::CreateView(_)) {
            return Ok(vec![Stmt::CreateView(stmt.clone(), sql.trim().to_string())]);
        }
    }
    Ok(out)
}

/// A batch that starts with CREATE [OR ALTER] PROC[EDURE] | FUNCTION (which SQL Server requires
/// to be the first statement of its batch): the module, its name and its text.
fn create_module(sql: &str, tokens: &[TokenWithSpan]) -> Result<Option<Stmt>, SyntaxError> {
    let sig: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let w = |i: usize, s: &str| sig.get(i).is_some_and(|t| word_is(&t.token, s));
    if !w(0, "CREATE") {
        return Ok(None);
    }
    let or_alter = w(1, "OR") && w(2, "ALTER");
    let at = if or_alter { 3 } else { 1 };
    let kind = if w(at, "PROC") || w(at, "PROCEDURE") {
        "P"
    } else if w(at, "FUNCTION") {
        "FN"
    } else {
        return Ok(None);
    };
    let rest: Vec<TokenWithSpan> = sig[at + 1..].iter().map(|t| (*t).clone()).collect();
    let mut p = Parser::new(&MsSqlDialect {}).with_tokens_with_locations(rest);
    let name = p.parse_object_name(false).map_err(|e| syntax(&p, e))?;
    Ok(Some(Stmt::CreateModule {
        kind,
        name,
        or_alter,
        text: sql.trim().to_string(),
    }))
}

fn ident_text(p: &mut Parser<'_>) -> Result<String, ParserError> {
    Ok(p.parse_identifier()?.value)
}

fn on_off(p: &mut Parser<'_>) -> Result<bool, ParserError> {
    if p.parse_keyword(Keyword::ON) {
        Ok(true)
    } else if p.parse_keyword(Keyword::OFF) {
        Ok(false)
    } else {
        Err(ParserError::ParserError(format!(
            "expected ON or OFF, found {}",
            p.peek_token().token
        )))
    }
}

fn peek_word(p: &Parser<'_>, n: usize, s: &str) -> bool {
    word_is(&p.peek_nth_token(n).token, s)
}

fn skip_tran_word(p: &mut Parser<'_>) {
    if peek_word(p, 0, "TRAN") || peek_word(p, 0, "TRANSACTION") || peek_word(p, 0, "WORK") {
        p.next_token();
    }
}

/// An optional transaction or savepoint name (an identifier or @variable) at this point.
fn optional_name(p: &mut Parser<'_>) -> Option<String> {
    match &p.peek_token().token {
        Token::Word(w) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => {
            let v = w.value.clone();
            p.next_token();
            Some(v)
        }
        _ => None,
    }
}

fn parse_block_or_one(p: &mut Parser<'_>) -> Result<Vec<Stmt>, ParserError> {
    while p.consume_token(&Token::SemiColon) {}
    if p.peek_keyword(Keyword::BEGIN)
        && !(peek_word(p, 1, "TRAN")
            || peek_word(p, 1, "TRANSACTION")
            || peek_word(p, 1, "DISTRIBUTED"))
    {
        p.next_token();
        let mut stmts = Vec::new();
        loop {
            while p.consume_token(&Token::SemiColon) {}
            if p.parse_keyword(Keyword::END) {
                break;
            }
            if p.peek_token().token == Token::EOF {
                return Err(ParserError::ParserError("BEGIN without END".into()));
            }
            stmts.push(parse_one(p)?);
        }
        Ok(stmts)
    } else {
        Ok(vec![parse_one(p)?])
    }
}

fn parse_one(p: &mut Parser<'_>) -> Result<Stmt, ParserError> {
    let t = p.peek_token().token;
    let kw = match &t {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    match kw.as_str() {
        "BEGIN"
            if peek_word(p, 1, "TRAN")
                || peek_word(p, 1, "TRANSACTION")
                || peek_word(p, 1, "DISTRIBUTED") =>
        {
            p.next_token();
            if peek_word(p, 0, "DISTRIBUTED") {
                p.next_token();
            }
            skip_tran_word(p);
            let _ = optional_name(p);
            Ok(Stmt::BeginTran)
        }
        "BEGIN" => {
            let stmts = parse_block_or_one(p)?;
            // A bare BEGIN ... END block runs its statements in order.
            Ok(Stmt::If {
                cond: Expr::Value(sqlparser::ast::Value::Boolean(true).into()),
                then: stmts,
                otherwise: vec![],
            })
        }
        "COMMIT" => {
            p.next_token();
            skip_tran_word(p);
            let _ = optional_name(p);
            Ok(Stmt::Commit)
        }
        "ROLLBACK" => {
            p.next_token();
            skip_tran_word(p);
            Ok(Stmt::Rollback(optional_name(p)))
        }
        "SAVE" => {
            p.next_token();
            skip_tran_word(p);
            let name = optional_name(p)
                .ok_or_else(|| ParserError::ParserError("SAVE TRANSACTION needs a name".into()))?;
            Ok(Stmt::Save(name))
        }
        "SET" => parse_set(p),
        // SELECT @v = expr (no FROM): an assignment, as SET @v = expr.
        "SELECT"
            if matches!(&p.peek_nth_token(1).token, Token::Word(w) if w.value.starts_with('@'))
                && p.peek_nth_token(2).token == Token::Eq =>
        {
            p.next_token();
            let name = match p.next_token().token {
                Token::Word(w) => w.value,
                _ => unreachable!("peeked a variable"),
            };
            p.next_token(); // =
            let e = p.parse_expr()?;
            if p.peek_token().token == Token::Comma || peek_word(p, 0, "FROM") {
                return Err(ParserError::ParserError(
                    "the simulator assigns one variable per SELECT, without FROM".into(),
                ));
            }
            Ok(Stmt::SetVar(name, "=".into(), e))
        }
        "DECLARE" => {
            p.next_token();
            let mut vars = Vec::new();
            loop {
                let name = match p.next_token().token {
                    Token::Word(w) if w.value.starts_with('@') => w.value,
                    other => {
                        return Err(ParserError::ParserError(format!(
                            "expected a @variable, found {other}"
                        )))
                    }
                };
                let _ = p.parse_keyword(Keyword::AS);
                let ty = p.parse_data_type()?;
                let init = if p.consume_token(&Token::Eq) {
                    Some(p.parse_expr()?)
                } else {
                    None
                };
                vars.push((name, ty, init));
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
            Ok(Stmt::Declare(vars))
        }
        "USE" => {
            p.next_token();
            Ok(Stmt::Use(ident_text(p)?))
        }
        // UPDATE STATISTICS table [...]: PostgreSQL keeps its own statistics.
        "UPDATE" if peek_word(p, 1, "STATISTICS") => {
            p.next_token();
            p.next_token();
            let _ = p.parse_object_name(false)?;
            while !matches!(p.peek_token().token, Token::EOF | Token::SemiColon)
                && !starts_statement(&p.peek_token().token)
            {
                p.next_token();
            }
            Ok(Stmt::SetOption("UPDATE STATISTICS".into()))
        }
        // CHECKPOINT [duration]: nothing to flush here.
        "CHECKPOINT" => {
            p.next_token();
            if matches!(p.peek_token().token, Token::Number(..)) {
                p.next_token();
            }
            Ok(Stmt::SetOption("CHECKPOINT".into()))
        }
        // RECONFIGURE [WITH OVERRIDE]: sp_configure's values take effect at once here.
        "RECONFIGURE" => {
            p.next_token();
            if p.parse_keyword(Keyword::WITH) {
                p.next_token();
            }
            Ok(Stmt::SetOption("RECONFIGURE".into()))
        }
        // CREATE TYPE name FROM base_type [NULL | NOT NULL]: an alias type.
        "CREATE" if peek_word(p, 1, "TYPE") => {
            p.next_token();
            p.next_token();
            let name = p.parse_object_name(false)?;
            p.expect_keyword(Keyword::FROM)?;
            let base = p.parse_data_type()?.to_string();
            let nullable = if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                false
            } else {
                let _ = p.parse_keyword(Keyword::NULL);
                true
            };
            Ok(Stmt::CreateAliasType {
                name,
                base,
                nullable,
            })
        }
        "CREATE" if peek_word(p, 1, "DATABASE") => {
            p.next_token();
            p.next_token();
            let name = ident_text(p)?;
            // Options (ON PRIMARY, COLLATE ...) are accepted and ignored.
            while !matches!(p.peek_token().token, Token::EOF | Token::SemiColon)
                && !starts_statement(&p.peek_token().token)
            {
                p.next_token();
            }
            Ok(Stmt::CreateDatabase(name))
        }
        "CREATE"
            if peek_word(p, 1, "TRIGGER")
                || (peek_word(p, 1, "OR")
                    && peek_word(p, 2, "ALTER")
                    && peek_word(p, 3, "TRIGGER")) =>
        {
            parse_create_trigger(p)
        }
        "DROP" if peek_word(p, 1, "TRIGGER") => {
            p.next_token();
            p.next_token();
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let mut names = vec![p.parse_object_name(false)?];
            while p.consume_token(&Token::Comma) {
                names.push(p.parse_object_name(false)?);
            }
            Ok(Stmt::DropTrigger { names, if_exists })
        }
        "DROP" if peek_word(p, 1, "DATABASE") => {
            p.next_token();
            p.next_token();
            let _if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Ok(Stmt::DropDatabase(ident_text(p)?))
        }
        "ALTER" if peek_word(p, 1, "DATABASE") => {
            p.next_token();
            p.next_token();
            let name = if p.parse_keyword(Keyword::CURRENT) {
                String::new()
            } else {
                ident_text(p)?
            };
            let mut words = Vec::new();
            if p.parse_keyword(Keyword::SET) {
                words.push("SET".to_string());
            }
            // `WITH ROLLBACK IMMEDIATE | AFTER n SECONDS` ends an option list: not a ROLLBACK.
            while !matches!(p.peek_token().token, Token::EOF | Token::SemiColon)
                && (!starts_statement(&p.peek_token().token)
                    || words.last().is_some_and(|w| w.eq_ignore_ascii_case("WITH"))
                    || (word_is(&p.peek_token().token, "WITH")
                        && (peek_word(p, 1, "ROLLBACK") || peek_word(p, 1, "NO_WAIT"))))
            {
                words.push(p.next_token().token.to_string());
            }
            Ok(Stmt::AlterDatabase(name, words))
        }
        "ALTER" if peek_word(p, 1, "TABLE") => parse_alter_table(p),
        "ALTER" if peek_word(p, 1, "SEQUENCE") => {
            p.next_token();
            p.next_token();
            let name = p.parse_object_name(false)?;
            if !peek_word(p, 0, "RESTART") {
                return Err(ParserError::ParserError(
                    "the simulator runs ALTER SEQUENCE ... RESTART [WITH n] only".into(),
                ));
            }
            p.next_token();
            let value = if p.parse_keyword(Keyword::WITH) {
                Some(p.parse_expr()?)
            } else {
                None
            };
            Ok(Stmt::RestartSequence { name, value })
        }
        "CREATE"
            if peek_word(p, 1, "UNIQUE")
                || peek_word(p, 1, "CLUSTERED")
                || peek_word(p, 1, "NONCLUSTERED")
                || peek_word(p, 1, "INDEX") =>
        {
            parse_create_index(p)
        }
        "EXEC" | "EXECUTE" => {
            p.next_token();
            if p.consume_token(&Token::LParen) {
                let e = p.parse_expr()?;
                p.expect_token(&Token::RParen)?;
                return Ok(Stmt::ExecString(e));
            }
            let proc = p.parse_object_name(false)?;
            let mut args = Vec::new();
            if !matches!(p.peek_token().token, Token::EOF | Token::SemiColon)
                && !starts_statement(&p.peek_token().token)
            {
                loop {
                    let name = match (&p.peek_token().token, &p.peek_nth_token(1).token) {
                        (Token::Word(w), Token::Eq) if w.value.starts_with('@') => {
                            let n = w.value.clone();
                            p.next_token();
                            p.next_token();
                            Some(n)
                        }
                        _ => None,
                    };
                    let e = p.parse_expr()?;
                    if peek_word(p, 0, "OUTPUT") || peek_word(p, 0, "OUT") {
                        p.next_token();
                    }
                    args.push((name, e));
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                }
            }
            Ok(Stmt::Exec { proc, args })
        }
        "DBCC" if peek_word(p, 1, "CHECKIDENT") => {
            p.next_token();
            p.next_token();
            p.expect_token(&Token::LParen)?;
            let table = match p.next_token().token {
                Token::SingleQuotedString(s) | Token::NationalStringLiteral(s) => s,
                Token::Word(w) => w.value,
                other => {
                    return Err(ParserError::ParserError(format!(
                        "DBCC CHECKIDENT: expected a table name, found {other}"
                    )))
                }
            };
            p.expect_token(&Token::Comma)?;
            if !peek_word(p, 0, "RESEED") {
                return Err(ParserError::ParserError(
                    "the simulator runs DBCC CHECKIDENT (table, RESEED, value) only".into(),
                ));
            }
            p.next_token();
            p.expect_token(&Token::Comma)?;
            let value = p.parse_expr()?;
            p.expect_token(&Token::RParen)?;
            if p.parse_keyword(Keyword::WITH) {
                p.next_token(); // NO_INFOMSGS
            }
            Ok(Stmt::Reseed { table, value })
        }
        "IF" => {
            p.next_token();
            let cond = p.parse_expr()?;
            let then = parse_block_or_one(p)?;
            while p.consume_token(&Token::SemiColon) {}
            let otherwise = if p.parse_keyword(Keyword::ELSE) {
                parse_block_or_one(p)?
            } else {
                vec![]
            };
            Ok(Stmt::If {
                cond,
                then,
                otherwise,
            })
        }
        "WITH" if peek_word(p, 1, "CHANGE_TRACKING_CONTEXT") => {
            p.next_token();
            p.next_token();
            p.expect_token(&Token::LParen)?;
            let ctx = p.parse_expr()?;
            p.expect_token(&Token::RParen)?;
            Ok(Stmt::WithChangeTrackingContext(
                ctx,
                Box::new(parse_one(p)?),
            ))
        }
        "PRINT" => {
            p.next_token();
            Ok(Stmt::Print(p.parse_expr()?))
        }
        "RAISERROR" => {
            p.next_token();
            p.expect_token(&Token::LParen)?;
            let message = p.parse_expr()?;
            p.expect_token(&Token::Comma)?;
            let severity = int_expr(p)?;
            p.expect_token(&Token::Comma)?;
            let state = int_expr(p)?;
            while p.consume_token(&Token::Comma) {
                p.parse_expr()?;
            }
            p.expect_token(&Token::RParen)?;
            if p.parse_keyword(Keyword::WITH) {
                p.parse_comma_separated(|p| p.parse_identifier())?;
            }
            Ok(Stmt::Raise {
                message,
                severity,
                state,
            })
        }
        "THROW" => {
            p.next_token();
            let _number = p.parse_expr()?;
            p.expect_token(&Token::Comma)?;
            let message = p.parse_expr()?;
            p.expect_token(&Token::Comma)?;
            let state = int_expr(p)?;
            Ok(Stmt::Raise {
                message,
                severity: 16,
                state,
            })
        }
        _ => Ok(Stmt::Sql(Box::new(p.parse_statement()?))),
    }
}

fn int_expr(p: &mut Parser<'_>) -> Result<i32, ParserError> {
    match p.parse_expr()? {
        Expr::Value(v) => v
            .value
            .to_string()
            .parse()
            .map_err(|_| ParserError::ParserError("expected an integer".into())),
        Expr::UnaryOp { expr, .. } => Ok(-expr.to_string().parse::<i32>().unwrap_or(0)),
        other => Err(ParserError::ParserError(format!(
            "expected an integer, found {other}"
        ))),
    }
}

fn starts_statement(t: &Token) -> bool {
    const STARTS: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVE",
        "SET",
        "DECLARE",
        "USE",
        "EXEC",
        "EXECUTE",
        "IF",
        "PRINT",
        "TRUNCATE",
        "WITH",
        "MERGE",
        "GO",
        "RAISERROR",
        "THROW",
    ];
    match t {
        Token::Word(w) if w.quote_style.is_none() => {
            STARTS.iter().any(|s| w.value.eq_ignore_ascii_case(s))
        }
        _ => false,
    }
}

fn parse_set(p: &mut Parser<'_>) -> Result<Stmt, ParserError> {
    p.next_token(); // SET
    let t = p.peek_token().token;
    if let Token::Word(w) = &t {
        if w.value.starts_with('@') {
            p.next_token();
            let op = match p.next_token().token {
                Token::Eq => "=".to_string(),
                t @ (Token::Plus | Token::Minus | Token::Mul | Token::Div) => {
                    p.expect_token(&Token::Eq)?;
                    format!("{t}=")
                }
                other => {
                    return Err(ParserError::ParserError(format!(
                        "expected = after SET {}, found {other}",
                        w.value
                    )))
                }
            };
            return Ok(Stmt::SetVar(w.value.clone(), op, p.parse_expr()?));
        }
    }
    if p.parse_keywords(&[Keyword::TRANSACTION, Keyword::ISOLATION, Keyword::LEVEL]) {
        let level = if p.parse_keywords(&[Keyword::READ, Keyword::UNCOMMITTED]) {
            Isolation::ReadUncommitted
        } else if p.parse_keywords(&[Keyword::READ, Keyword::COMMITTED]) {
            Isolation::ReadCommitted
        } else if p.parse_keywords(&[Keyword::REPEATABLE, Keyword::READ]) {
            Isolation::RepeatableRead
        } else if p.parse_keyword(Keyword::SNAPSHOT) {
            Isolation::Snapshot
        } else if p.parse_keyword(Keyword::SERIALIZABLE) {
            Isolation::Serializable
        } else {
            return Err(ParserError::ParserError("unknown isolation level".into()));
        };
        return Ok(Stmt::SetIsolation(level));
    }
    let name = match p.next_token().token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        other => {
            return Err(ParserError::ParserError(format!(
                "unexpected {other} after SET"
            )))
        }
    };
    match name.as_str() {
        "NOCOUNT" => Ok(Stmt::SetNoCount(on_off(p)?)),
        "XACT_ABORT" => Ok(Stmt::SetXactAbort(on_off(p)?)),
        "IDENTITY_INSERT" => {
            let t = p.parse_object_name(false)?;
            Ok(Stmt::SetIdentityInsert(t, on_off(p)?))
        }
        _ => {
            // SET ANSI_NULLS ON, SET TEXTSIZE 2147483647, SET DATEFORMAT mdy, SET LANGUAGE x,
            // SET ANSI_WARNINGS, ARITHABORT ... ON: accepted, no effect here.
            let mut words = vec![name];
            while p.consume_token(&Token::Comma) {
                words.push(p.next_token().token.to_string());
            }
            if !matches!(p.peek_token().token, Token::EOF | Token::SemiColon)
                && !starts_statement(&p.peek_token().token)
            {
                words.push(p.next_token().token.to_string());
            }
            Ok(Stmt::SetOption(words.join(" ")))
        }
    }
}

fn parse_alter_table(p: &mut Parser<'_>) -> Result<Stmt, ParserError> {
    // Look past the table name (word, then `.word`...) without consuming anything: the forms
    // sqlparser knows go to it untouched (rewinding a sqlparser Parser is not exact).
    let mut k = 2;
    while p.peek_nth_token(k + 1).token == Token::Period {
        k += 2;
    }
    let after = k + 1;
    let word_at = |p: &Parser<'_>, n: usize, w: &str| word_is(&p.peek_nth_token(n).token, w);
    // [WITH CHECK | WITH NOCHECK] {CHECK | NOCHECK} CONSTRAINT
    let mut c = after;
    if word_at(p, c, "WITH") && (word_at(p, c + 1, "CHECK") || word_at(p, c + 1, "NOCHECK")) {
        c += 2;
    }
    if (word_at(p, c, "CHECK") || word_at(p, c, "NOCHECK")) && word_at(p, c + 1, "CONSTRAINT") {
        p.next_token();
        p.next_token();
        let table = p.parse_object_name(false)?;
        if p.parse_keyword(Keyword::WITH) {
            p.next_token();
        }
        let enable = word_is(&p.next_token().token, "CHECK");
        p.next_token(); // CONSTRAINT
        let names = if p.parse_keyword(Keyword::ALL) {
            None
        } else {
            let mut names = vec![ident_text(p)?];
            while p.consume_token(&Token::Comma) {
                names.push(ident_text(p)?);
            }
            Some(names)
        };
        return Ok(Stmt::ConstraintChecking {
            table,
            enable,
            names,
        });
    }
    let special = (word_at(p, after, "ALTER") && word_at(p, after + 1, "COLUMN"))
        || ((word_at(p, after, "ENABLE") || word_at(p, after, "DISABLE"))
            && word_at(p, after + 1, "CHANGE_TRACKING"));
    if !special {
        return Ok(Stmt::Sql(Box::new(p.parse_statement()?)));
    }
    p.next_token();
    p.next_token();
    let table = p.parse_object_name(false)?;
    if p.parse_keywords(&[Keyword::ALTER, Keyword::COLUMN]) {
        let column = ident_text(p)?;
        let ty = p.parse_data_type()?;
        if p.parse_keyword(Keyword::COLLATE) {
            p.parse_identifier()?;
        }
        let nullable = if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            Some(false)
        } else if p.parse_keyword(Keyword::NULL) {
            Some(true)
        } else {
            None
        };
        return Ok(Stmt::AlterColumn {
            table,
            column,
            ty,
            nullable,
        });
    }
    let enable = peek_word(p, 0, "ENABLE");
    if (enable || peek_word(p, 0, "DISABLE")) && peek_word(p, 1, "CHANGE_TRACKING") {
        p.next_token();
        p.next_token();
        let mut track_columns = false;
        if p.parse_keyword(Keyword::WITH) {
            p.expect_token(&Token::LParen)?;
            let opt = ident_text(p)?;
            p.expect_token(&Token::Eq)?;
            let on = on_off(p)?;
            p.expect_token(&Token::RParen)?;
            if opt.eq_ignore_ascii_case("TRACK_COLUMNS_UPDATED") {
                track_columns = on;
            }
        }
        return Ok(Stmt::TableChangeTracking {
            table,
            enable,
            track_columns,
        });
    }
    Err(ParserError::ParserError(
        "expected ALTER COLUMN or ENABLE/DISABLE CHANGE_TRACKING".into(),
    ))
}

/// `CREATE [OR ALTER] TRIGGER name ON table {AFTER | FOR} INSERT, UPDATE, DELETE AS [BEGIN]
/// [SET NOCOUNT ON] THROW number, 'message', state [END]`. Other bodies are refused by name: the
/// simulator runs no procedural code.
/// `IF SESSION_CONTEXT(N'key') = value RETURN`, when it comes next: (key, value as text).
fn session_bypass(p: &mut Parser<'_>) -> Result<Option<(String, String)>, ParserError> {
    if !(peek_word(p, 0, "IF") && peek_word(p, 1, "SESSION_CONTEXT")) {
        return Ok(None);
    }
    p.next_token();
    p.next_token();
    p.expect_token(&Token::LParen)?;
    let key = match p.next_token().token {
        Token::SingleQuotedString(s) | Token::NationalStringLiteral(s) => s,
        other => {
            return Err(ParserError::ParserError(format!(
                "SESSION_CONTEXT takes a literal key here, found {other}"
            )))
        }
    };
    p.expect_token(&Token::RParen)?;
    p.expect_token(&Token::Eq)?;
    let value = match p.next_token().token {
        Token::Number(n, _) => n,
        Token::SingleQuotedString(s) | Token::NationalStringLiteral(s) => s,
        other => {
            return Err(ParserError::ParserError(format!(
                "a literal value after SESSION_CONTEXT(...) =, found {other}"
            )))
        }
    };
    // The pre-pass breaks statements before RETURN.
    while p.consume_token(&Token::SemiColon) {}
    if !peek_word(p, 0, "RETURN") {
        return Err(ParserError::ParserError(
            "the simulator runs IF SESSION_CONTEXT(...) = value RETURN only".into(),
        ));
    }
    p.next_token();
    Ok(Some((key, value)))
}

fn parse_create_trigger(p: &mut Parser<'_>) -> Result<Stmt, ParserError> {
    p.next_token(); // CREATE
    let or_alter = peek_word(p, 0, "OR");
    if or_alter {
        p.next_token();
        p.next_token();
    }
    p.next_token(); // TRIGGER
    let name = p.parse_object_name(false)?;
    p.expect_keyword(Keyword::ON)?;
    let table = p.parse_object_name(false)?;
    if peek_word(p, 0, "INSTEAD") {
        return Err(ParserError::ParserError(
            "the simulator supports AFTER triggers only".into(),
        ));
    }
    if !(peek_word(p, 0, "AFTER") || peek_word(p, 0, "FOR")) {
        return Err(ParserError::ParserError("expected AFTER or FOR".into()));
    }
    p.next_token();
    let mut events = Vec::new();
    loop {
        let _ = p.consume_token(&Token::SemiColon);
        match p.next_token().token {
            Token::Word(w)
                if ["INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .any(|e| w.value.eq_ignore_ascii_case(e)) =>
            {
                events.push(w.value.to_uppercase())
            }
            other => {
                return Err(ParserError::ParserError(format!(
                    "expected INSERT, UPDATE or DELETE, found {other}"
                )))
            }
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    if peek_word(p, 0, "NOT") {
        // NOT FOR REPLICATION
        p.next_token();
        p.next_token();
        p.next_token();
    }
    p.expect_keyword(Keyword::AS)?;
    let skip_breaks = |p: &mut Parser<'_>| while p.consume_token(&Token::SemiColon) {};
    skip_breaks(p);
    let block = peek_word(p, 0, "BEGIN");
    if block {
        p.next_token();
        skip_breaks(p);
    }
    if peek_word(p, 0, "SET") && peek_word(p, 1, "NOCOUNT") {
        p.next_token();
        p.next_token();
        p.next_token();
        skip_breaks(p);
    }
    let bypass = session_bypass(p)?;
    skip_breaks(p);
    if !peek_word(p, 0, "THROW") {
        // Any other body: kept with its text, and disabled (the simulator runs no procedural
        // code; sys.triggers says is_disabled = 1). The batch's text is filled in by the caller.
        return Ok(Stmt::StoredTrigger {
            name,
            table,
            or_alter,
            events,
            text: String::new(),
        });
    }
    p.next_token();
    let number = int_expr(p)?;
    p.expect_token(&Token::Comma)?;
    let message = match p.parse_expr()? {
        Expr::Value(v) => match v.value {
            sqlparser::ast::Value::SingleQuotedString(s)
            | sqlparser::ast::Value::NationalStringLiteral(s) => s,
            other => other.to_string(),
        },
        other => {
            return Err(ParserError::ParserError(format!(
                "a trigger's THROW message must be a literal, found {other}"
            )))
        }
    };
    p.expect_token(&Token::Comma)?;
    let state = int_expr(p)?;
    skip_breaks(p);
    if block {
        if !peek_word(p, 0, "END") {
            return Err(ParserError::ParserError("expected END".into()));
        }
        p.next_token();
        skip_breaks(p);
    }
    if p.peek_token().token != Token::EOF {
        return Err(ParserError::ParserError(
            "CREATE TRIGGER must be the only statement in the batch".into(),
        ));
    }
    Ok(Stmt::CreateTrigger {
        name,
        table,
        or_alter,
        events,
        number,
        message,
        state,
        bypass,
    })
}

fn parse_create_index(p: &mut Parser<'_>) -> Result<Stmt, ParserError> {
    p.next_token(); // CREATE
    let mut unique = false;
    let mut clustered = false;
    loop {
        if peek_word(p, 0, "UNIQUE") {
            unique = true;
        } else if peek_word(p, 0, "CLUSTERED") {
            clustered = true;
        } else if peek_word(p, 0, "NONCLUSTERED") {
            clustered = false;
        } else {
            break;
        }
        p.next_token();
    }
    p.expect_keyword(Keyword::INDEX)?;
    let name = ident_text(p)?;
    p.expect_keyword(Keyword::ON)?;
    let table = p.parse_object_name(false)?;
    p.expect_token(&Token::LParen)?;
    let columns = p.parse_comma_separated(|p| {
        let c = p.parse_identifier()?.value;
        let desc = if p.parse_keyword(Keyword::DESC) {
            true
        } else {
            let _ = p.parse_keyword(Keyword::ASC);
            false
        };
        Ok((c, desc))
    })?;
    p.expect_token(&Token::RParen)?;
    let mut include = Vec::new();
    if p.parse_keyword(Keyword::INCLUDE) {
        p.expect_token(&Token::LParen)?;
        include = p.parse_comma_separated(|p| Ok(p.parse_identifier()?.value))?;
        p.expect_token(&Token::RParen)?;
    }
    let filter = if p.parse_keyword(Keyword::WHERE) {
        Some(p.parse_expr()?)
    } else {
        None
    };
    // WITH (...) options are not simulated; ON [PRIMARY] is ignored.
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        let mut depth = 1;
        while depth > 0 {
            match p.next_token().token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::EOF => break,
                _ => {}
            }
        }
    }
    if p.parse_keyword(Keyword::ON) {
        p.parse_identifier()?;
    }
    Ok(Stmt::CreateIndex {
        name,
        table,
        unique,
        clustered,
        columns,
        include,
        filter,
    })
}

/// Parses an sp_executesql parameter declaration (`@P1 int, @P2 decimal(10, 2) OUTPUT`) into
/// lower-cased names and types, in order.
pub fn parse_param_declarations(decl: &str) -> Result<Vec<(String, TsqlType)>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in decl.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (name, rest) = part
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("parameter declaration '{part}' has no type"))?;
        if !name.starts_with('@') {
            return Err(format!(
                "parameter declaration '{part}' must start with @name"
            ));
        }
        let mut ty = rest.trim();
        for suffix in ["OUTPUT", "OUT", "READONLY"] {
            if ty.len() > suffix.len() && ty[ty.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            {
                ty = ty[..ty.len() - suffix.len()].trim_end();
            }
        }
        let t = TsqlType::parse(ty).map_err(|e| format!("parameter {name}: {}", e.0))?;
        out.push((name.to_lowercase(), t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_without_semicolons() {
        let s =
            parse_batch("SELECT 1 SELECT 2\nBEGIN TRAN t1 SAVE TRAN s1 ROLLBACK TRAN s1 COMMIT")
                .unwrap();
        assert_eq!(s.len(), 6);
        assert!(matches!(s[5], Stmt::Commit));
        assert!(matches!(&s[4], Stmt::Rollback(Some(n)) if n == "s1"));
    }

    #[test]
    fn special_forms() {
        let s = parse_batch("ALTER TABLE [dbo].[t] ALTER COLUMN [c] bigint NOT NULL; CREATE UNIQUE NONCLUSTERED INDEX ix ON t (a DESC, b) INCLUDE (c)").unwrap();
        assert!(matches!(
            &s[0],
            Stmt::AlterColumn {
                nullable: Some(false),
                ..
            }
        ));
        assert!(matches!(
            &s[1],
            Stmt::CreateIndex {
                unique: true,
                clustered: false,
                ..
            }
        ));
        let s = parse_batch("CREATE INDEX ix ON t (a) INCLUDE (b) WHERE a IS NOT NULL AND b > 0")
            .unwrap();
        assert!(matches!(
            &s[0],
            Stmt::CreateIndex {
                filter: Some(_),
                ..
            }
        ));
        let s = parse_batch(
            "SELECT CT.SYS_CHANGE_VERSION FROM CHANGETABLE(CHANGES [dbo].[x]]y], @v) AS CT",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        let s = parse_batch("DECLARE @x int = 5, @y nvarchar(10); SET @x += 1; IF @x > 1 BEGIN SELECT 1 SELECT 2 END ELSE SELECT 3").unwrap();
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn syntax_error_names_the_token() {
        let e = parse_batch("SELECT FROM WHERE").unwrap_err();
        assert!(e.to_string().contains("Incorrect syntax near"), "{e}");
    }

    #[test]
    fn parameter_declarations() {
        let d = parse_param_declarations("@P1 int,@P2 decimal(10, 2) OUTPUT, @Name nvarchar(max)")
            .unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[1],
            (
                "@p2".to_string(),
                TsqlType::Decimal {
                    precision: 10,
                    scale: 2,
                    numeric: false
                }
            )
        );
        assert_eq!(d[2].0, "@name");
        assert!(parse_param_declarations("@P1 frob")
            .unwrap_err()
            .contains("@P1"));
        assert!(parse_param_declarations("").unwrap().is_empty());
    }

    #[test]
    fn a_fence_trigger_parses_and_other_bodies_are_named() {
        let s = parse_batch(
            "CREATE OR ALTER TRIGGER [dbo].[f x] ON [dbo].[a]]b] AFTER INSERT, UPDATE, DELETE AS BEGIN SET NOCOUNT ON; THROW 51000, N'it''s fenced', 1; END",
        )
        .unwrap();
        match &s[0] {
            Stmt::CreateTrigger {
                name,
                table,
                or_alter,
                events,
                number,
                message,
                state,
                bypass,
            } => {
                assert_eq!(*bypass, None);
                assert_eq!(name.0.last().unwrap().as_ident().unwrap().value, "f x");
                assert_eq!(table.0.last().unwrap().as_ident().unwrap().value, "a]b");
                assert!(*or_alter);
                assert_eq!(events.join(","), "INSERT,UPDATE,DELETE");
                assert_eq!(
                    (*number, message.as_str(), *state),
                    (51000, "it's fenced", 1)
                );
            }
            other => panic!("{other:?}"),
        }
        // The sessions a fence lets pass.
        let s = parse_batch(
            "CREATE OR ALTER TRIGGER f ON a AFTER INSERT AS BEGIN IF SESSION_CONTEXT(N'replicator_fallback') = 1 RETURN; THROW 51000, N'fenced', 1; END",
        )
        .unwrap();
        match &s[0] {
            Stmt::CreateTrigger { bypass, number, .. } => {
                assert_eq!(
                    (bypass.clone(), *number),
                    (
                        Some(("replicator_fallback".to_string(), "1".to_string())),
                        51000
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        // Any other body is kept with the batch's text (and created disabled).
        let s = parse_batch("CREATE TRIGGER t ON a FOR INSERT AS UPDATE a SET x = 1").unwrap();
        assert!(
            matches!(&s[..], [Stmt::StoredTrigger { text, events, .. }] if text.ends_with("SET x = 1") && events == &["INSERT"]),
            "{s:?}"
        );
        let s = parse_batch("DROP TRIGGER IF EXISTS dbo.t1, dbo.t2").unwrap();
        assert!(matches!(&s[0], Stmt::DropTrigger { names, if_exists: true } if names.len() == 2));
    }

    #[test]
    fn alter_database_keeps_its_options() {
        let s = parse_batch("ALTER DATABASE [shop] SET ALLOW_SNAPSHOT_ISOLATION ON").unwrap();
        assert_eq!(s.len(), 1);
        assert!(
            matches!(&s[0], Stmt::AlterDatabase(n, w) if n == "shop" && w.join(" ") == "SET ALLOW_SNAPSHOT_ISOLATION ON"),
            "{s:?}"
        );
    }

    #[test]
    fn alter_table_add_lists() {
        let s = parse_batch("ALTER TABLE t ADD a int NULL, b nvarchar(10) DEFAULT 'x,y', CONSTRAINT c CHECK (a > 0) SELECT 1").unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        let Stmt::Sql(st) = &s[0] else {
            panic!("{s:?}")
        };
        let Statement::AlterTable(at) = st.as_ref() else {
            panic!()
        };
        assert_eq!(at.operations.len(), 3);
    }
}

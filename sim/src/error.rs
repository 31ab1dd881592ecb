//! SQL Server errors as the client sees them, and the mapping from PostgreSQL errors.

use tokio_postgres::error::SqlState;

/// An error reported to the client in an ERROR token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Msg {number}, Level {class}, State {state}: {message}")]
pub struct SqlError {
    /// SQL Server error number.
    pub number: i32,
    /// State.
    pub state: u8,
    /// Severity (class); 16 for user errors, 20+ closes the connection.
    pub class: u8,
    /// Message text.
    pub message: String,
    /// The error aborts the whole batch, not only the statement (conversion errors, XACT_ABORT).
    pub aborts_batch: bool,
    /// The error ended the transaction (serialization failures, deadlocks).
    pub ends_transaction: bool,
}

impl SqlError {
    /// A statement-level error.
    pub fn new(number: i32, class: u8, message: String) -> Self {
        SqlError {
            number,
            state: 1,
            class,
            message,
            aborts_batch: false,
            ends_transaction: false,
        }
    }

    /// An internal failure of the simulator (severity 16, number 50000), with its cause.
    pub fn internal(message: String) -> Self {
        SqlError::new(50000, 16, message)
    }

    /// The connection to the backing PostgreSQL is gone: severity 20 closes the session.
    pub fn fatal(message: String) -> Self {
        SqlError {
            number: 50000,
            state: 1,
            class: 20,
            message,
            aborts_batch: true,
            ends_transaction: true,
        }
    }

    /// Maps a PostgreSQL error to SQL Server's number and wording.
    pub fn from_pg(e: &tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            if e.is_closed() {
                return SqlError::fatal(
                    "The connection to the backing PostgreSQL database was lost.".into(),
                );
            }
            return SqlError::internal(format!("backing database: {e}"));
        };
        let msg = db.message();
        let quoted = || msg.split('"').nth(1).unwrap_or("").to_string();
        let constraint = db.constraint().unwrap_or("").to_string();
        let table = db.table().unwrap_or("").to_string();
        let schema = db.schema().unwrap_or("dbo").to_string();
        let code = db.code();
        // Errors the simulator raises itself: '[number] message' (see _sim.raise).
        if *code == SqlState::RAISE_EXCEPTION {
            if let Some((num, text)) = msg.strip_prefix('[').and_then(|m| m.split_once("] ")) {
                if let Ok(n) = num.parse::<i32>() {
                    return SqlError::new(n, 16, text.to_string());
                }
            }
        }
        let mut err = if *code == SqlState::UNDEFINED_TABLE {
            SqlError::new(208, 16, format!("Invalid object name '{}'.", quoted()))
        } else if *code == SqlState::UNDEFINED_COLUMN {
            // 'column "x" does not exist' or 'column t.x does not exist'.
            let name = if msg.contains('"') {
                quoted()
            } else {
                msg.strip_prefix("column ")
                    .and_then(|m| m.split(' ').next())
                    .unwrap_or("")
                    .to_string()
            };
            let name = name.rsplit('.').next().unwrap_or(&name).to_string();
            SqlError::new(207, 16, format!("Invalid column name '{name}'."))
        } else if *code == SqlState::UNIQUE_VIOLATION {
            let key = db
                .detail()
                .and_then(|d| d.split("=(").nth(1))
                .and_then(|d| d.split(')').next())
                .unwrap_or("")
                .to_string();
            let kind = if constraint.starts_with("pk") {
                "PRIMARY KEY"
            } else {
                "UNIQUE KEY"
            };
            if constraint.starts_with("pk") || constraint.starts_with("uq") {
                SqlError::new(2627, 14, format!("Violation of {kind} constraint '{constraint}'. Cannot insert duplicate key in object '{schema}.{table}'. The duplicate key value is ({key})."))
            } else {
                SqlError::new(2601, 14, format!("Cannot insert duplicate key row in object '{schema}.{table}' with unique index '{constraint}'. The duplicate key value is ({key})."))
            }
        } else if *code == SqlState::NOT_NULL_VIOLATION {
            let col = db.column().unwrap_or("").to_string();
            SqlError::new(515, 16, format!("Cannot insert the value NULL into column '{col}', table '{schema}.{table}'; column does not allow nulls. INSERT fails."))
        } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
            SqlError::new(547, 16, format!("The statement conflicted with the FOREIGN KEY constraint \"{constraint}\". The conflict occurred in table \"{schema}.{table}\"."))
        } else if *code == SqlState::CHECK_VIOLATION {
            if constraint.starts_with("_sim_") {
                SqlError::new(
                    220,
                    16,
                    "Arithmetic overflow error for the column's data type.".into(),
                )
            } else {
                SqlError::new(547, 16, format!("The statement conflicted with the CHECK constraint \"{constraint}\". The conflict occurred in table \"{schema}.{table}\"."))
            }
        } else if *code == SqlState::STRING_DATA_RIGHT_TRUNCATION {
            SqlError::new(8152, 16, "String or binary data would be truncated.".into())
        } else if *code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE {
            let mut e = SqlError::new(
                8115,
                16,
                "Arithmetic overflow error converting expression to data type numeric.".into(),
            );
            e.aborts_batch = true;
            e
        } else if *code == SqlState::DIVISION_BY_ZERO {
            SqlError::new(8134, 16, "Divide by zero error encountered.".into())
        } else if *code == SqlState::SYNTAX_ERROR {
            SqlError::new(
                102,
                15,
                format!("Incorrect syntax near '{}'. ({msg})", quoted()),
            )
        } else if *code == SqlState::T_R_SERIALIZATION_FAILURE {
            let mut e = SqlError::new(
                3960,
                16,
                "Snapshot isolation transaction aborted due to update conflict. You cannot use snapshot isolation to access table directly or indirectly in database to update, delete, or insert the row that has been modified or deleted by another transaction. Retry the transaction or change the isolation level for the update/delete statement.".into(),
            );
            e.ends_transaction = true;
            e.aborts_batch = true;
            e
        } else if *code == SqlState::T_R_DEADLOCK_DETECTED {
            let mut e = SqlError::new(1205, 13, "Transaction was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction.".into());
            e.ends_transaction = true;
            e.aborts_batch = true;
            e
        } else if *code == SqlState::UNDEFINED_FUNCTION
            && msg.starts_with("operator does not exist")
        {
            SqlError::new(
                402,
                16,
                format!(
                    "The data types are incompatible in this operator ({}).",
                    msg.trim_start_matches("operator does not exist: ")
                ),
            )
        } else if *code == SqlState::UNDEFINED_FUNCTION {
            let name = msg
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .split('(')
                .next()
                .unwrap_or("")
                .trim_start_matches("_sim.")
                .to_string();
            SqlError::new(
                195,
                15,
                format!("'{name}' is not a recognized built-in function name."),
            )
        } else if *code == SqlState::DUPLICATE_TABLE || *code == SqlState::DUPLICATE_OBJECT {
            SqlError::new(
                2714,
                16,
                format!(
                    "There is already an object named '{}' in the database.",
                    quoted()
                ),
            )
        } else if *code == SqlState::INVALID_SCHEMA_NAME {
            SqlError::new(2760, 16, format!("The specified schema name \"{}\" either does not exist or you do not have permission to use it.", quoted()))
        } else if *code == SqlState::INVALID_TEXT_REPRESENTATION {
            let mut e = SqlError::new(245, 16, format!("Conversion failed: {msg}"));
            e.aborts_batch = true;
            e
        } else if *code == SqlState::INVALID_DATETIME_FORMAT {
            let mut e = SqlError::new(
                241,
                16,
                "Conversion failed when converting date and/or time from character string.".into(),
            );
            e.aborts_batch = true;
            e
        } else if *code == SqlState::DATETIME_FIELD_OVERFLOW {
            let text = if msg.starts_with("The ") {
                msg.to_string()
            } else {
                "The conversion of a varchar data type to a datetime data type resulted in an out-of-range value.".into()
            };
            let mut e = SqlError::new(242, 16, text);
            e.aborts_batch = true;
            e
        } else if *code == SqlState::QUERY_CANCELED {
            SqlError::new(3621, 0, "The statement has been terminated.".into())
        } else if *code == SqlState::UNDEFINED_OBJECT && msg.contains("savepoint") {
            SqlError::new(
                3931,
                16,
                "Cannot roll back. No transaction or savepoint of that name was found.".into(),
            )
        } else {
            SqlError::new(50000, 16, format!("{msg} (PostgreSQL {})", code.code()))
        };
        if err.class == 14 {
            err.state = 1;
        }
        err
    }
}

//! Error types of the MSNP core.
//!
//! Two layers can fail, and they fail differently:
//!
//! * [`FrameError`]: the byte stream itself is unusable (line too long, claimed payload too big,
//!   garbage in the command line). The connection must be closed; nothing can be answered because
//!   we may not even know where the next command starts.
//! * [`ParseError`]: a complete frame arrived but its arguments do not fit the command. The
//!   stream is still in sync, and if the transaction id could be read ([`ParseError::trid`]) the
//!   server may answer with an [`ErrorCode`](crate::types::ErrorCode) where PROTOCOL.md says so
//!   (e.g. `201` for a malformed handle in `ADD`, `208` for one in `CAL`).

use crate::types::TrId;

/// The byte stream cannot be framed. Every variant means "close the connection".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// No line terminator within the first `limit` bytes.
    #[error("command line longer than {limit} bytes")]
    LineTooLong {
        /// The limit that was hit, in bytes including the line terminator.
        limit: usize,
    },
    /// More arguments than the decoder accepts.
    #[error("more than {limit} arguments on one line")]
    TooManyArgs {
        /// The maximum number of arguments after the command name.
        limit: usize,
    },
    /// A payload command claimed more bytes than allowed for it in this direction.
    #[error("{command} payload of {claimed} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// The command name (three letters).
        command: String,
        /// The byte count the peer claimed.
        claimed: u64,
        /// The limit for this command and direction.
        limit: usize,
    },
    /// The length argument of a payload command is missing.
    #[error("{command} needs a payload length argument")]
    MissingLength {
        /// The command name.
        command: String,
    },
    /// The length argument of a payload command is not a plain decimal number.
    #[error("payload length of {command} is not a decimal number")]
    BadLength {
        /// The command name.
        command: String,
    },
    /// The command line is not valid UTF-8.
    #[error("command line is not valid UTF-8")]
    NotUtf8,
    /// The command line contains a control character (including a bare CR).
    #[error("command line contains control byte 0x{byte:02x}")]
    ControlChar {
        /// The offending byte.
        byte: u8,
    },
    /// The command name is not three ASCII upper-case letters or digits.
    #[error("malformed command name")]
    BadCommandName,
}

/// What was wrong with a frame's arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// An argument was required but the line ended.
    #[error("missing argument: {0}")]
    Missing(&'static str),
    /// More arguments than the command takes.
    #[error("unexpected trailing arguments")]
    TrailingArgs,
    /// The transaction id is not a decimal `u32`.
    #[error("invalid transaction id")]
    BadTrId,
    /// A number argument is not a decimal `u32` (or out of range).
    #[error("invalid number for {0}")]
    BadNumber(&'static str),
    /// A user handle is malformed (too long, no single `@`, whitespace, no dot in the domain).
    #[error("invalid user handle")]
    BadPassport,
    /// A friendly name or group name is malformed or too long.
    #[error("invalid name for {0}")]
    BadName(&'static str),
    /// A URL-encoded text argument (a name) whose escapes do not decode to UTF-8.
    #[error("{0} is not UTF-8 once decoded")]
    NotUtf8(&'static str),
    /// An argument is not one of the values allowed for it.
    #[error("invalid value for {0}")]
    BadValue(&'static str),
    /// The frame has a payload where none is allowed, or lacks one where it is required.
    #[error("payload mismatch")]
    Payload,
}

/// A frame that does not fit its command's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// The transaction id, if it was read before the error (so the server can answer).
    pub trid: Option<TrId>,
}

impl ParseError {
    /// An error with no known transaction id.
    #[must_use]
    pub const fn new(kind: ParseErrorKind) -> Self {
        Self { kind, trid: None }
    }
}

/// A typed value could not be parsed from its wire form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}")]
pub struct InvalidValue {
    /// The name of the type that failed to parse.
    pub what: &'static str,
}

impl InvalidValue {
    /// A new error for the type named `what`.
    #[must_use]
    pub const fn new(what: &'static str) -> Self {
        Self { what }
    }
}

//! An argument cursor over a [`Frame`], in the style of mini-redis `Parse`.
//!
//! Command parsers pull typed values in order (`next_trid`, `next_str`, `next_u32`,
//! `next_parse::<ListKind>()`) and end with [`Args::finish`], which rejects trailing junk. Once a
//! transaction id has been read, every later error carries it so the server can answer
//! `<code> <trid>`.

use std::str::FromStr;

use bytes::Bytes;

use crate::error::{ParseError, ParseErrorKind};
use crate::frame::Frame;
use crate::types::{TrId, decodes_to_utf8};

/// A cursor over a frame's arguments (the payload length token excluded).
#[derive(Debug)]
pub struct Args<'a> {
    args: &'a [String],
    pos: usize,
    trid: Option<TrId>,
    payload: Option<&'a Bytes>,
}

impl<'a> Args<'a> {
    /// A cursor at the first argument of `frame`.
    #[must_use]
    pub fn new(frame: &'a Frame) -> Self {
        Self {
            args: frame.args_before_payload(),
            pos: 0,
            trid: None,
            payload: frame.payload.as_ref(),
        }
    }

    /// An error of `kind` carrying the transaction id read so far.
    #[must_use]
    pub const fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            kind,
            trid: self.trid,
        }
    }

    /// The transaction id read so far, if any.
    #[must_use]
    pub const fn trid(&self) -> Option<TrId> {
        self.trid
    }

    /// Number of arguments not yet consumed.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    /// The next argument without consuming it.
    #[must_use]
    pub fn peek(&self) -> Option<&'a str> {
        self.args.get(self.pos).map(String::as_str)
    }

    /// The next argument.
    ///
    /// # Errors
    /// [`ParseErrorKind::Missing`] naming `what` if the line ended.
    pub fn next_str(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        let s = self
            .peek()
            .ok_or_else(|| self.error(ParseErrorKind::Missing(what)))?;
        self.pos += 1;
        Ok(s)
    }

    /// The next argument, if there is one.
    pub fn next_opt(&mut self) -> Option<&'a str> {
        let s = self.peek()?;
        self.pos += 1;
        Some(s)
    }

    /// Reads the transaction id and remembers it for later errors.
    ///
    /// # Errors
    /// [`ParseErrorKind::Missing`] or [`ParseErrorKind::BadTrId`].
    pub fn next_trid(&mut self) -> Result<TrId, ParseError> {
        let s = self.next_str("trid")?;
        let t = TrId::parse(s).map_err(|_| self.error(ParseErrorKind::BadTrId))?;
        self.trid = Some(t);
        Ok(t)
    }

    /// Reads a decimal `u32`.
    ///
    /// # Errors
    /// [`ParseErrorKind::Missing`] or [`ParseErrorKind::BadNumber`].
    pub fn next_u32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        let s = self.next_str(what)?;
        crate::types::parse_u32(s).ok_or_else(|| self.error(ParseErrorKind::BadNumber(what)))
    }

    /// Reads a value of any type that parses from its wire form.
    ///
    /// # Errors
    /// [`ParseErrorKind::Missing`], or `bad` if the value does not parse.
    pub fn next_parse<T: FromStr>(
        &mut self,
        what: &'static str,
        bad: ParseErrorKind,
    ) -> Result<T, ParseError> {
        let s = self.next_str(what)?;
        s.parse().map_err(|_| self.error(bad))
    }

    /// Reads a URL-encoded text argument (a friendly or group name): `bad` when it does not
    /// parse as `T`, [`ParseErrorKind::NotUtf8`] when its `%XX` escapes do not decode to UTF-8
    /// (names are UTF-8 text, DRAFT §5.5; `%FF%FE` is not a name).
    ///
    /// # Errors
    /// As [`Args::next_parse`], plus [`ParseErrorKind::NotUtf8`].
    pub fn next_text<T: FromStr>(
        &mut self,
        what: &'static str,
        bad: ParseErrorKind,
    ) -> Result<T, ParseError> {
        let s = self.next_str(what)?;
        let parsed = s.parse().map_err(|_| self.error(bad))?;
        if !decodes_to_utf8(s) {
            return Err(self.error(ParseErrorKind::NotUtf8(what)));
        }
        Ok(parsed)
    }

    /// Reads a keyword-like value (`ListKind`, `Status` …); a bad value is
    /// [`ParseErrorKind::BadValue`].
    ///
    /// # Errors
    /// As [`Args::next_parse`].
    pub fn next_enum<T: FromStr>(&mut self, what: &'static str) -> Result<T, ParseError> {
        self.next_parse(what, ParseErrorKind::BadValue(what))
    }

    /// Reads an optional trailing value: `None` if the line ended.
    ///
    /// # Errors
    /// `bad` if the value is present but does not parse.
    pub fn opt_parse<T: FromStr>(&mut self, bad: ParseErrorKind) -> Result<Option<T>, ParseError> {
        match self.next_opt() {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| self.error(bad)),
        }
    }

    /// Consumes an exact literal argument (e.g. the constant `0` after a group name).
    ///
    /// # Errors
    /// [`ParseErrorKind::Missing`] or [`ParseErrorKind::BadValue`].
    pub fn expect_literal(&mut self, lit: &'static str) -> Result<(), ParseError> {
        let s = self.next_str(lit)?;
        if s == lit {
            Ok(())
        } else {
            Err(self.error(ParseErrorKind::BadValue(lit)))
        }
    }

    /// All remaining arguments, consumed.
    pub fn rest(&mut self) -> &'a [String] {
        let r = &self.args[self.pos..];
        self.pos = self.args.len();
        r
    }

    /// The frame's payload.
    ///
    /// # Errors
    /// [`ParseErrorKind::Payload`] if the frame has none.
    pub fn payload(&self) -> Result<Bytes, ParseError> {
        self.payload
            .cloned()
            .ok_or_else(|| self.error(ParseErrorKind::Payload))
    }

    /// Ends parsing: every argument must have been consumed.
    ///
    /// # Errors
    /// [`ParseErrorKind::TrailingArgs`] if some remain.
    pub fn finish(&self) -> Result<(), ParseError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error(ParseErrorKind::TrailingArgs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ListKind;

    #[test]
    fn cursor_reads_in_order_and_finishes() {
        let f = Frame::new("REM", vec!["7".into(), "FL".into(), "x".into()]);
        let mut a = Args::new(&f);
        assert_eq!(a.next_trid(), Ok(TrId(7)));
        assert_eq!(a.next_enum::<ListKind>("list"), Ok(ListKind::Fl));
        let e = a.finish().unwrap_err();
        assert_eq!(
            e,
            ParseError {
                kind: ParseErrorKind::TrailingArgs,
                trid: Some(TrId(7))
            }
        );
        assert_eq!(a.next_str("h"), Ok("x"));
        assert!(a.finish().is_ok());
        assert_eq!(
            a.next_u32("n").unwrap_err().kind,
            ParseErrorKind::Missing("n")
        );
    }

    #[test]
    fn names_that_do_not_decode_to_utf8_are_refused_with_the_trid() {
        use crate::client::{ClientCommand, Role};
        use crate::version::{Capabilities, ProtocolVersion};
        let caps = Capabilities::for_version(ProtocolVersion::MSNP7);
        let parse = |line: &[&str]| {
            let (name, args) = line.split_first().unwrap();
            let f = Frame::new(*name, args.iter().map(|a| (*a).to_owned()).collect());
            ClientCommand::from_frame(&f, Role::Notification, &caps)
        };
        for line in [
            &["REA", "9", "alice@example.com", "%FF%FE"][..],
            &["ADD", "9", "FL", "bob@example.com", "B%C3"],
            &["ADG", "9", "%80", "0"],
            &["REG", "9", "1", "x%E2%82", "0"],
        ] {
            let e = parse(line).unwrap_err();
            assert!(
                matches!(e.kind, ParseErrorKind::NotUtf8(_)),
                "{line:?}: {e:?}"
            );
            assert_eq!(e.trid, Some(TrId(9)));
        }
        // Escaped UTF-8 and a `%` that starts no escape are names.
        assert!(parse(&["REA", "9", "alice@example.com", "Ren%C3%A9e%20100%"]).is_ok());
    }

    #[test]
    fn bad_trid_has_no_trid() {
        let f = Frame::new("SYN", vec!["x".into()]);
        assert_eq!(Args::new(&f).next_trid().unwrap_err().trid, None);
    }
}

//! Typed access to a request's `params`, with OpenClaw's error text
//! (`invalid <method> params: …`).

use crate::ws::frames::ErrorShape;
use serde_json::Value as Json;

/// A request's `params` and the method they are for (named in every error).
#[derive(Clone, Copy)]
pub(crate) struct Params<'a> {
    pub method: &'a str,
    pub v: &'a Json,
}

impl Params<'_> {
    pub fn bad(&self, what: impl std::fmt::Display) -> ErrorShape {
        ErrorShape::invalid(format!("invalid {} params: {what}", self.method))
    }
    pub fn opt_str(&self, k: &str) -> Result<String, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(self.bad(format!("{k} must be a string"))),
        }
    }
    pub fn req_str(&self, k: &str) -> Result<String, ErrorShape> {
        let s = self.opt_str(k)?;
        if s.is_empty() {
            return Err(self.bad(format!("must have required property '{k}'")));
        }
        Ok(s)
    }
    pub fn opt_u64(&self, k: &str) -> Result<Option<u64>, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or_else(|| self.bad(format!("{k} must be a non-negative number"))),
        }
    }
    /// A millisecond field as whole seconds, rounded up (0 when absent).
    pub fn opt_ms_as_secs(&self, k: &str) -> Result<u32, ErrorShape> {
        Ok(self
            .opt_u64(k)?
            .map(|ms| ms.div_ceil(1000).min(u32::MAX as u64) as u32)
            .unwrap_or(0))
    }
    pub fn opt_bool(&self, k: &str) -> Result<bool, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(format!("{k} must be a boolean"))),
        }
    }
    pub fn opt_strs(&self, k: &str) -> Result<Vec<String>, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(vec![]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(format!("{k} must be an array of strings")))
                })
                .collect(),
            Some(_) => Err(self.bad(format!("{k} must be an array of strings"))),
        }
    }
}

//! Local fakes of the external services clawplane talks to, following their published
//! request/response shapes. Each is built on [`recorder`]: it binds 127.0.0.1:0, records
//! what it received and can inject 429s and errors.
#![allow(dead_code)]

pub mod anthropic;
pub mod discord;
pub mod discord_gateway;
pub mod openai;
pub mod receiver;
pub mod recorder;
pub mod slack;
pub mod telegram;
pub mod transcription;
pub mod whatsapp;

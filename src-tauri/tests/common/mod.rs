#![allow(unreachable_pub)]

pub mod notifications;
pub mod process;
pub mod webdriver;

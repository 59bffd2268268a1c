#![allow(unreachable_pub)]

pub mod process;
pub mod webdriver;

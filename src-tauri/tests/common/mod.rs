#![allow(unreachable_pub)]

pub mod webdriver;

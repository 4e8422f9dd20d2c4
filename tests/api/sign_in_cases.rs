//! Sign-in and passwords, case by case (docs/security.md).

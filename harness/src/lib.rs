//! flashsale harness: fires concurrent buyers at a flash-sale server, records every attempt,
//! checks the invariants of SPEC.md against the server's exported ledger, and writes reports.

pub mod checker;
pub mod history;
pub mod ledger;
pub mod report;
pub mod scenario;

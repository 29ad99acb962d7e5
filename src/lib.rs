//! entra-writeback: Microsoft Entra ID groups written back into on-premises Active Directory.
pub mod sim;

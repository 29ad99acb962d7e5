//! Ranged reads of `member` (`member;range=LO-HI`): what an attribute name in a search result
//! says about the next read. A pure function, so a hostile or broken server's names are fuzzed.

/// How an attribute name returned for a ranged read of `member` continues the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRange {
    /// Not `member`: its values are not members.
    Other,
    /// `member` whole, the last range (`member;range=LO-*`), or a range whose end is no
    /// usable number: the values are members and the read is complete.
    Last,
    /// `member;range=LO-HI`: the values are members and the next read starts at `HI + 1`.
    Next(usize),
}

/// Classifies an attribute name (case-insensitive) from a ranged `member` read.
pub fn member_range(name: &str) -> MemberRange {
    let lower = name.to_ascii_lowercase();
    if lower == "member" {
        return MemberRange::Last;
    }
    let Some(range) = lower.strip_prefix("member;range=") else {
        return MemberRange::Other;
    };
    match range.split_once('-') {
        Some((_, end)) if end != "*" => end
            .parse::<usize>()
            .ok()
            .and_then(|e| e.checked_add(1))
            .map_or(MemberRange::Last, MemberRange::Next),
        _ => MemberRange::Last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_range_names() {
        assert_eq!(member_range("member"), MemberRange::Last);
        assert_eq!(member_range("Member;Range=0-1499"), MemberRange::Next(1500));
        assert_eq!(member_range("member;range=1500-*"), MemberRange::Last);
        assert_eq!(member_range("member;range=0-x"), MemberRange::Last);
        assert_eq!(member_range("member;range=0"), MemberRange::Last);
        assert_eq!(member_range("cn"), MemberRange::Other);
        assert_eq!(member_range("memberOf"), MemberRange::Other);
    }

    #[test]
    fn an_end_at_usize_max_ends_the_read_instead_of_overflowing() {
        // Regression: `end + 1` overflowed (a panic in debug builds, a wrap to 0 in release)
        // when a server answered `member;range=0-18446744073709551615`.
        let name = format!("member;range=0-{}", usize::MAX);
        assert_eq!(member_range(&name), MemberRange::Last);
    }
}

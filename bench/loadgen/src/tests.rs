use super::*;

#[test]
fn bound_accepts_the_edges() {
    assert_eq!(check_bound("connections", 1usize, 1, 10).unwrap(), 1);
    assert_eq!(check_bound("connections", 10usize, 1, 10).unwrap(), 10);
}

#[test]
fn bound_refuses_values_outside() {
    for v in [0usize, 11, usize::MAX] {
        let e = check_bound("connections", v, 1, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("connections must be between 1 and 10, got `{v}`")
        );
    }
}

//! Distances on the ground, for the feed, claims, check-in and the assignment of visits;
//! places and visit windows as plain values.

use chrono::{DateTime, Utc};

/// A point, degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lng: f64,
}

impl Point {
    pub fn new(lat: f64, lng: f64) -> Self {
        Self { lat, lng }
    }

    pub fn from_opt(lat: Option<f64>, lng: Option<f64>) -> Option<Self> {
        Some(Self::new(lat?, lng?))
    }

    pub fn distance_m(self, other: Point) -> f64 {
        distance_m(self.lat, self.lng, other.lat, other.lng)
    }

    /// [`planar_m`] from this point.
    pub fn planar_m(self, other: Point) -> f64 {
        planar_m(self.lat, self.lng, other.lat, other.lng)
    }
}

/// A visit's window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    /// Half-open windows: touching ends do not overlap.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Great-circle distance in metres between two points given in degrees (haversine; off by
/// well under 1% at the scale of a county).
pub fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// Metres in a degree of latitude (and of longitude on the equator).
pub const METRES_PER_DEGREE: f64 = 111_195.0;

/// Metres per degree of longitude at latitude `lat`.
pub fn metres_per_degree_lng(lat: f64) -> f64 {
    METRES_PER_DEGREE * lat.to_radians().cos().max(0.01)
}

/// Distance in metres on a flat map centred on the origin (`lat0`, `lng0`): the feed's
/// distance, because the database computes exactly the same sum to order visits (no
/// trigonometry there). Within about 0.2% of [`distance_m`] up to 20 km in China.
pub fn planar_m(lat0: f64, lng0: f64, lat: f64, lng: f64) -> f64 {
    let dy = (lat - lat0) * METRES_PER_DEGREE;
    let dx = (lng - lng0) * metres_per_degree_lng(lat0);
    (dy * dy + dx * dx).sqrt()
}

/// The latitude and longitude half-widths (degrees) of a box holding every point within
/// `metres` ([`planar_m`]) of a point at latitude `lat`: a cheap, indexable first filter.
pub fn bounding_box(lat: f64, metres: f64) -> (f64, f64) {
    (
        metres / METRES_PER_DEGREE,
        metres / metres_per_degree_lng(lat),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // Hefei railway station to Hefei south station: about 9.3 km.
        let d = distance_m(31.8856, 117.3172, 31.7996, 117.2908);
        assert!((9_200.0..9_900.0).contains(&d), "{d}");
        assert_eq!(distance_m(31.8, 117.2, 31.8, 117.2), 0.0);
        // 0.001° of latitude is about 111 m anywhere.
        let d = distance_m(31.0, 117.0, 31.001, 117.0);
        assert!((110.0..112.5).contains(&d), "{d}");
    }

    #[test]
    fn the_flat_map_is_close_to_the_globe() {
        let (lat, lng) = (31.82, 117.23);
        for (dlat, dlng) in [
            (0.0, 0.1),
            (0.1, 0.0),
            (0.12, 0.15),
            (-0.15, -0.12),
            (0.003, 0.0),
        ] {
            let exact = distance_m(lat, lng, lat + dlat, lng + dlng);
            let flat = planar_m(lat, lng, lat + dlat, lng + dlng);
            assert!(
                (flat - exact).abs() <= exact * 0.002 + 0.5,
                "{dlat},{dlng}: {flat} {exact}"
            );
        }
    }

    #[test]
    fn the_box_holds_the_circle() {
        let (lat, lng) = (31.82, 117.23);
        let (dlat, dlng) = bounding_box(lat, 5_000.0);
        // The box's edges are at least 5 km away along the axes.
        assert!(distance_m(lat, lng, lat + dlat, lng) >= 4_999.0);
        assert!(distance_m(lat, lng, lat, lng + dlng) >= 4_999.0);
    }
}

import Foundation
import KlaxonDomain

/// A shadow-mode service's pages beside what the old pager sent, person by person and incident
/// by incident (the incident key: Klaxon's dedup key, PagerDuty's `incident_key`). A difference
/// is someone one pager reached and the other did not, or reached more than `toleranceMs` later.
enum ShadowComparison {
    struct Page: Equatable {
        var incidentKey: String
        var person: String
        var channel: String
        var at: Millis
    }

    enum Verdict: Equatable {
        case same
        case onlyKlaxon
        case onlySource
        case klaxonLater(Millis)
        case sourceLater(Millis)

        var isDifference: Bool { self != .same }
    }

    struct Row: Equatable {
        var incidentKey: String
        var person: String
        var klaxon: [Page]
        var source: [Page]
        var verdict: Verdict
    }

    static func compare(klaxon: [Page], source: [Page], toleranceMs: Millis = 60_000) -> [Row] {
        struct Key: Hashable { var incident: String; var person: String }
        var pairs: [Key: (klaxon: [Page], source: [Page])] = [:]
        for page in klaxon { pairs[Key(incident: page.incidentKey, person: page.person.lowercased()), default: ([], [])].klaxon.append(page) }
        for page in source { pairs[Key(incident: page.incidentKey, person: page.person.lowercased()), default: ([], [])].source.append(page) }
        return pairs.map { key, pages in
            let ours = pages.klaxon.sorted { $0.at < $1.at }
            let theirs = pages.source.sorted { $0.at < $1.at }
            let verdict: Verdict
            switch (ours.first, theirs.first) {
            case let (k?, s?):
                verdict = k.at - s.at > toleranceMs ? .klaxonLater(k.at - s.at) : s.at - k.at > toleranceMs ? .sourceLater(s.at - k.at) : .same
            case (_?, nil): verdict = .onlyKlaxon
            default: verdict = .onlySource
            }
            return Row(incidentKey: key.incident, person: ours.first?.person ?? theirs.first?.person ?? key.person, klaxon: ours, source: theirs, verdict: verdict)
        }.sorted {
            let (a, b) = (($0.klaxon.first ?? $0.source.first)!.at, ($1.klaxon.first ?? $1.source.first)!.at)
            return a != b ? a < b : ($0.incidentKey, $0.person) < ($1.incidentKey, $1.person)
        }
    }
}

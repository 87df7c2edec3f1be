import Shared
import Foundation
import KlaxonDomain

/// Schedules in PostgreSQL: name, time zone, and layers + overrides as one JSON document.
public enum ScheduleStore {
    struct Document: Codable {
        struct Layer: Codable {
            var users: [UInt64]
            var rotationVirtualStartMs: Int64
            var turnLengthSeconds: UInt32
            var restrictions: [Restriction]
            var startMs: Int64?
            var endMs: Int64?
        }
        struct Restriction: Codable {
            var kind: String  // daily | weekly
            var weekday: Int?
            var startSecondOfDay: Int
            var durationSeconds: Int
        }
        struct Override: Codable {
            var user: UInt64
            var startMs: Int64
            var endMs: Int64
        }
        var layers: [Layer]
        var overrides: [Override]
    }

    public static func encode(_ schedule: Schedule) -> String {
        let document = Document(
            layers: schedule.layers.map { layer in
                Document.Layer(
                    users: layer.users, rotationVirtualStartMs: layer.rotationVirtualStart, turnLengthSeconds: layer.turnLengthSeconds,
                    restrictions: layer.restrictions.map { restriction in
                        switch restriction {
                        case let .daily(start, duration):
                            Document.Restriction(kind: "daily", weekday: nil, startSecondOfDay: start, durationSeconds: duration)
                        case let .weekly(weekday, start, duration):
                            Document.Restriction(kind: "weekly", weekday: weekday, startSecondOfDay: start, durationSeconds: duration)
                        }
                    },
                    startMs: layer.start, endMs: layer.end)
            },
            overrides: schedule.overrides.map { Document.Override(user: $0.user, startMs: $0.start, endMs: $0.end) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(document)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func decode(timeZone: String, json: String) throws -> Schedule {
        let document = try JSONDecoder().decode(Document.self, from: Data(json.utf8))
        return Schedule(
            timeZone: timeZone,
            layers: document.layers.map { layer in
                ScheduleLayer(
                    users: layer.users, rotationVirtualStart: layer.rotationVirtualStartMs, turnLengthSeconds: layer.turnLengthSeconds,
                    restrictions: layer.restrictions.map { restriction in
                        restriction.kind == "weekly"
                            ? .weekly(weekday: restriction.weekday ?? 1, startSecondOfDay: restriction.startSecondOfDay,
                                      durationSeconds: restriction.durationSeconds)
                            : .daily(startSecondOfDay: restriction.startSecondOfDay, durationSeconds: restriction.durationSeconds)
                    },
                    start: layer.startMs, end: layer.endMs)
            },
            overrides: document.overrides.map { ScheduleOverride(user: $0.user, start: $0.startMs, end: $0.endMs) })
    }

    /// The schedules with these ids, by id (missing ones are left out).
    public static func load(_ connection: PGConnection, ids: [Int64]) throws -> [Int64: (name: String, schedule: Schedule)] {
        guard !ids.isEmpty else { return [:] }
        let rows = try connection.query(
            "SELECT id, name, time_zone, definition::text AS definition FROM schedules WHERE id = ANY($1::bigint[])", [PGArray(ids)])
        var schedules: [Int64: (name: String, schedule: Schedule)] = [:]
        for row in 0..<rows.count {
            schedules[rows.int64(row, "id")!] = (
                rows.string(row, "name")!,
                try decode(timeZone: rows.string(row, "time_zone")!, json: rows.string(row, "definition")!)
            )
        }
        return schedules
    }

    /// The schedules `policy` names, by id, as data for `IncidentCore`.
    public static func schedules(_ connection: PGConnection, for policy: EscalationPolicy) throws -> [UInt64: Schedule] {
        let ids = policy.levels.flatMap(\.targets).compactMap { target -> Int64? in
            if case let .schedule(id) = target { return Int64(id) }
            return nil
        }
        let loaded = try load(connection, ids: Array(Set(ids)))
        return Dictionary(uniqueKeysWithValues: loaded.map { (UInt64($0.key), $0.value.schedule) })
    }
}

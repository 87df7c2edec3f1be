import Foundation
import HTTPOperations
import HTTPTypes
import Hummingbird
import IncidentEngine
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// Schedules as calendars: `GET /schedules/<id>.ics?token=<feed token>` on Assignment's HTTP
/// listener answers the schedule's shifts from 7 days ago to 60 days ahead as iCalendar. The feed
/// token (32 characters, stored hashed) is made and replaced by `Admin/RotateScheduleFeed`; the
/// previous one stops working at once.
enum ScheduleFeeds {
    static let pastDays: Int64 = 7
    static let futureDays: Int64 = 60

    static func rotate(_ connection: PGConnection, scheduleID: Int64) throws -> ScheduleFeed {
        let token = Secrets.text(count: 32)
        guard try connection.query(
            "UPDATE schedules SET feed_token_hash = $2 WHERE id = $1", [scheduleID, Secrets.sha256(token)]).affectedRows == 1
        else { throw RPCError(.notFound, "schedule \(scheduleID) does not exist") }
        return ScheduleFeed(scheduleID: UInt64(scheduleID), path: "/schedules/\(scheduleID).ics?token=\(token)", token: token)
    }

    enum Answer: Equatable {
        case calendar(String)
        case notFound(String)
        case unauthorized(String)
    }

    /// The feed for `file` ("3.ics") with `token`, at `now`.
    static func feed(_ connection: PGConnection, file: String, token: String?, now: Millis) throws -> Answer {
        guard file.hasSuffix(".ics"), let id = Int64(file.dropLast(4)), id > 0 else {
            return .notFound("no such feed: use /schedules/<id>.ics?token=<feed token>")
        }
        let rows = try connection.query("SELECT name, feed_token_hash FROM schedules WHERE id = $1", [id])
        guard !rows.isEmpty, let name = rows.string(0, "name") else { return .notFound("schedule \(id) does not exist") }
        guard let stored = rows.bytes(0, "feed_token_hash") else {
            return .notFound("schedule \(id) has no feed yet: klaxon schedule feed \(id) makes one")
        }
        guard let token, Secrets.constantTimeEquals(stored, Secrets.sha256(token)) else {
            return .unauthorized("wrong or missing feed token for schedule \(id)")
        }
        guard let schedule = try ScheduleStore.load(connection, ids: [id])[id]?.schedule else { return .notFound("schedule \(id) does not exist") }
        let shifts = schedule.shifts(from: now - pastDays * 86_400_000, to: now + futureDays * 86_400_000)
        let userIDs = Array(Set(shifts.map { Int64($0.user) }))
        let names = try connection.query("SELECT id, name FROM users WHERE id = ANY($1::bigint[])", [PGArray(userIDs)])
        var byID: [UInt64: String] = [:]
        for row in 0..<names.count { byID[names.uint64(row, "id")!] = names.string(row, "name")! }
        return .calendar(ICalendar.feed(scheduleID: UInt64(id), scheduleName: name, shifts: shifts, names: byID, now: now))
    }
}

extension AdminAPI {
    func registerFeeds(into router: inout RPCRouter) {
        let pool = self.pool
        router.register(Admin.RotateScheduleFeed) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in try ScheduleFeeds.rotate(connection, scheduleID: Int64(request.id)) }
        }
    }
}

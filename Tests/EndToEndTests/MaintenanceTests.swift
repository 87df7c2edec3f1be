import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Maintenance windows (issue 27, point 4) through the CLI and both front doors, on the manual
/// clock: hold pages nobody until the window ends (then level 1, reason `assigned`, timeline
/// `maintenance_released`), a matcher lets critical pages through, drop keeps events in the
/// audit trail, heartbeats are held too, and the window's life cycle (list, end, cancel).
@Suite struct MaintenanceTests {
    static func cli(_ pipeline: Pipeline) throws -> KlaxonCLI {
        try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
    }

    static func event(_ key: String, dedup: String, summary: String, severity: Severity, action: EventAction = .trigger) -> Event {
        Event(routingKey: key, eventAction: action, dedupKey: dedup, payload: Payload(summary: summary, source: "db-1", severity: severity))
    }

    static func windowID(_ output: String) -> UInt64? {
        output.split(separator: "\n").dropFirst().first.flatMap { UInt64($0.split(separator: " ").first ?? "") }
    }

    @Test func anEventDuringAHoldPagesNobodyUntilTheWindowEndsThenLevelOne() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let cli = try Self.cli(pipeline)
        let start = clock.nowMs()
        let started = try await cli.run(["maintenance", "start", "--service", "Checkout", "--for", "2h", "--description", "database upgrade"])
        #expect(started.status == 0 && started.out.contains("ongoing") && started.out.contains("hold"), "\(started.err)\(started.out)")
        let windowID = try #require(Self.windowID(started.out), "\(started.out)")

        // During the hold: the incident is created and marked, nobody is paged, nothing escalates.
        let ingest = pipeline.client(.ingest)
        let held: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(service.routingKey, dedup: "replica-lag", summary: "Replica lag 40 s", severity: .critical))
        #expect(held.outcome == .created)
        // Resolves still apply.
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(service.routingKey, dedup: "flap", summary: "Flapping", severity: .critical))
        let resolved: EventResult = try await ingest.call(
            Ingest.SendEvent, Self.event(service.routingKey, dedup: "flap", summary: "Flapping", severity: .critical, action: .resolve))
        #expect(resolved.outcome == .resolved)
        // A heartbeat of the service in maintenance is held too.
        let admin = pipeline.client(.assignment)
        let monitor: Heartbeat = try await admin.call(
            Admin.CreateHeartbeat, Heartbeat(name: "backup", serviceID: UInt64(service.serviceID), periodSeconds: 3600, graceSeconds: 0))
        #expect(try await HeartbeatTests.ping(pipeline.ingestHTTPPort, "/heartbeat/\(monitor.id)/fail", body: "no space left").status == 200)
        for _ in 0..<10 { await pipeline.letTimePass(60_000) }  // 10 minutes: level 1's escalation delay would have passed
        #expect(pipeline.sink.requests.isEmpty, "paged during the hold: \(pipeline.sink.requests.compactMap { $0.webhook?.incident.title })")
        let shown: IncidentInfo = try await admin.call(Assignment.GetIncident, GetIncidentRequest(incidentID: held.incidentID))
        #expect(shown.state?.heldUntilMs == start + 7_200_000 && shown.state?.assigneeIDs == [] && shown.state?.escalateAtMs == 0)
        let incidentShow = try await cli.run(["incident", "show", String(held.incidentID)])
        #expect(incidentShow.out.contains("in maintenance until"), "\(incidentShow.out)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE held_until_ms IS NOT NULL AND status = 'triggered'") == 2)

        // At the window's end the still-open ones page level 1 with reason `assigned`.
        await pipeline.move(to: start + 7_200_000)
        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(Set(pages.compactMap { $0.webhook?.incident.dedupKey }) == ["replica-lag", "heartbeat:\(monitor.id)"])
        #expect(pages.allSatisfy { $0.webhook?.reason == "assigned" && $0.webhook?.user.name == "Alice" })
        let timeline: GetTimelineReply = try await admin.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: held.incidentID))
        let types = timeline.entries.map(\.type)
        #expect(types.contains("maintenance_held") && types.contains("maintenance_released"), "\(types)")
        #expect(types.firstIndex(of: "maintenance_released")! < types.lastIndex(of: "assign")!)
        #expect(timeline.entries.first { $0.type == "maintenance_released" }?.atMs == start + 7_200_000)
        await pipeline.settle()
        #expect(pipeline.sink.requests.count == 2, "the resolved one paged nobody")

        // The window is over: listed as past; ending it is refused.
        let past = try await cli.run(["maintenance", "list", "--phase", "past"])
        #expect(past.out.contains("database upgrade"), "\(past.out)")
        let endPast = try await cli.run(["maintenance", "end", String(windowID)])
        #expect(endPast.status == 3 && endPast.err.contains("already over"), "\(endPast.err)")
        await ingest.close()
        await admin.close()
        await pipeline.shutdown()
    }

    @Test func matchersDropAndTheWindowsLifeCycle() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let cli = try Self.cli(pipeline)
        // A hold for everything but critical events.
        let started = try await cli.run(["maintenance", "start", "--service", String(service.serviceID), "--for", "1h", "--match", "severity!=critical"])
        #expect(started.status == 0, "\(started.err)")
        let holdID = try #require(Self.windowID(started.out))
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(service.routingKey, dedup: "down", summary: "Checkout down", severity: .critical))
        let critical = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(critical.first?.webhook?.incident.dedupKey == "down", "a critical page went through")
        let warning: EventResult = try await ingest.call(
            Ingest.SendEvent, Self.event(service.routingKey, dedup: "slow", summary: "Checkout slow", severity: .warning))
        await pipeline.letTimePass(1_000)
        #expect(pipeline.sink.requests.count == 1, "the warning is held")

        // A future window: listed as future, cancelled; an ongoing one cannot be cancelled.
        let formatter = ISO8601DateFormatter()
        let at = { (ms: Millis) in formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) }
        let future = try await cli.run([
            "maintenance", "start", "--service", "Checkout", "--start", at(clock.nowMs() + 7_200_000), "--end", at(clock.nowMs() + 10_800_000),
            "--mode", "drop",
        ])
        let futureID = try #require(Self.windowID(future.out), "\(future.err)")
        #expect(future.out.contains("future"))
        let listed = try await cli.run(["maintenance", "list", "--phase", "future"])
        #expect(listed.lines.count == 2 && listed.out.contains("drop"), "\(listed.out)")
        let ongoing = try await cli.run(["maintenance", "list", "--phase", "ongoing"])
        #expect(ongoing.out.contains("severity!=critical"), "\(ongoing.out)")
        let refused = try await cli.run(["maintenance", "cancel", String(holdID)])
        #expect(refused.status == 3 && refused.err.contains("ongoing: end it instead"), "\(refused.err)")
        #expect(try await cli.run(["maintenance", "cancel", String(futureID)]).out.contains("cancelled"))

        // Ending the hold now releases what it held: the warning pages at once.
        let ended = try await cli.run(["maintenance", "end", String(holdID)])
        #expect(ended.status == 0 && ended.out.contains("past"), "\(ended.err)\(ended.out)")
        await pipeline.letTimePass(1_000)
        let released = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(released.last?.webhook?.incident.id == warning.incidentID && released.last?.webhook?.reason == "assigned")

        // A drop window: the event opens nothing and is kept in the service's audit trail.
        let drop = try await cli.run(["maintenance", "start", "--service", "Checkout", "--for", "30m", "--mode", "drop"])
        #expect(drop.status == 0, "\(drop.err)")
        await pipeline.letTimePass(5_001)  // Ingest's cache of the service (5 s)
        let dropped: EventResult = try await ingest.call(
            Ingest.SendEvent, Self.event(service.routingKey, dedup: "noise", summary: "Noisy during the deploy", severity: .error))
        #expect(dropped.outcome == .ignored && dropped.incidentID == 0 && dropped.message.contains("dropped by maintenance window"), "\(dropped.message)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE dedup_key = 'noise'") == 0)
        let audit = try await cli.run(["service", "audit", "Checkout"])
        #expect(audit.out.contains("dropped") && audit.out.contains("Noisy during the deploy"), "\(audit.out)")
        // Bad windows are refused with the field named.
        let bad = try await cli.run(["maintenance", "start", "--service", "Checkout", "--for", "1h", "--match", "summary=~(", "--mode", "freeze"])
        #expect(bad.status == 3 && bad.err.contains("mode: must be hold or drop") && bad.err.contains("matchers[0].value"), "\(bad.err)")
        await ingest.close()
        await pipeline.shutdown()
    }
}

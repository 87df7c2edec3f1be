import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Services and routing keys over the binary protocol (issue 12, point 1).
@Suite struct ServicesAPITests {
    @Test func servicesKeysRotationAndDeletion() async throws {
        let pipeline = try await Pipeline()
        let seeded = try await pipeline.seed(users: ["Alice"])
        let admin = pipeline.client(.assignment)
        let ingest = pipeline.client(.ingest, token: nil)

        // Invalid fields are named, nothing written.
        let bad = await admin.failure(Admin.CreateService, ServiceMessage(name: "", urgencyRule: "loud", eventsBurst: 0))
        #expect(bad?.status.violations.map(\.field) == ["name", "escalation_policy_id", "urgency_rule", "events_burst"])
        let unknownPolicy = await admin.failure(Admin.CreateService, ServiceMessage(name: "Web", escalationPolicyID: 999, urgencyRule: "high", eventsBurst: 60))
        #expect(unknownPolicy?.status.violations.map(\.description) == ["escalation policy 999 does not exist"])

        // Created with one generated key, shown in full once.
        let created: ServiceMessage = try await admin.call(Admin.CreateService, ServiceMessage(
            name: "Web", escalationPolicyID: UInt64(seeded.policyID), ackTimeoutSeconds: 300, autoResolveTimeoutSeconds: 0,
            urgencyRule: "severity", eventsPerMinute: 0, eventsBurst: 60))
        let first = try #require(created.routingKeys.first)
        #expect(created.routingKeys.count == 1 && first.name == "default")
        #expect(first.key.count == 32 && first.key.allSatisfy { $0.isLetter || $0.isNumber })
        let got: ServiceMessage = try await admin.call(Admin.GetService, AdminIDRequest(id: created.id))
        #expect(got.routingKeys.map(\.key) == [Secrets.mask(first.key)])
        #expect(got.ackTimeoutSeconds == 300 && got.urgencyRule == "severity" && got.autoResolveTimeoutSeconds == 0)
        let duplicate = await admin.failure(Admin.CreateService, ServiceMessage(name: "Web", escalationPolicyID: UInt64(seeded.policyID), urgencyRule: "high", eventsBurst: 60))
        #expect(duplicate?.status.violations.map(\.field) == ["name"])

        // The key works; a second key works beside it; deleting the first leaves the second.
        let viaFirst: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(first.key, dedupKey: "one"))
        #expect(viaFirst.outcome == .created)
        let second: RoutingKey = try await admin.call(Admin.CreateRoutingKey, CreateRoutingKeyRequest(serviceID: created.id, name: "rotated"))
        #expect(second.key.count == 32 && second.key != first.key)
        let viaSecond: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(second.key, dedupKey: "one"))
        #expect(viaSecond.outcome == .deduplicated && viaSecond.incidentID == viaFirst.incidentID)
        let _: Empty = try await admin.call(Admin.DeleteRoutingKey, DeleteRoutingKeyRequest(serviceID: created.id, name: "default"))
        // Ingest caches keys for 5 s: a fresh Ingest sees the deletion at once.
        await pipeline.stop(.ingest)
        try await pipeline.start(.ingest)
        let freshIngest = pipeline.client(.ingest, token: nil)
        #expect(await freshIngest.failure(Ingest.SendEvent, Pipeline.trigger(first.key))?.code == .invalidArgument)
        let stillWorks: EventResult = try await freshIngest.call(Ingest.SendEvent, Pipeline.trigger(second.key, dedupKey: "two"))
        #expect(stillWorks.outcome == .created)

        // Update changes settings; keys are not touched by it.
        var update = got
        update.routingKeys = []
        update.eventsPerMinute = 30
        let updated: ServiceMessage = try await admin.call(Admin.UpdateService, update)
        #expect(updated.eventsPerMinute == 30 && updated.routingKeys.map(\.name) == ["rotated"])

        // A service with open incidents cannot be deleted; the refusal names them.
        let refused = await admin.failure(Admin.DeleteService, AdminIDRequest(id: created.id))
        #expect(refused?.code == .failedPrecondition)
        let numbers = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT number FROM incidents WHERE service_id = $1 ORDER BY number", [Int64(created.id)])
            return (0..<rows.count).map { "#" + rows.string($0, "number")! }
        }
        #expect(refused?.message == "service \(created.id) \"Web\" has open incidents \(numbers.joined(separator: ", ")): resolve them first")
        for dedup in ["one", "two"] {
            let _: EventResult = try await freshIngest.call(Ingest.SendEvent, Event(routingKey: second.key, eventAction: .resolve, dedupKey: dedup))
        }
        let _: Empty = try await admin.call(Admin.DeleteService, AdminIDRequest(id: created.id))
        #expect(await admin.failure(Admin.GetService, AdminIDRequest(id: created.id))?.code == .notFound)
        let list: ServiceListMessage = try await admin.call(Admin.ListServices, Empty())
        #expect(list.services.map(\.name) == ["Checkout"])
        // Its incidents' history stays.
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE service_id = \(created.id)") == 2)
        await pipeline.shutdown()
    }
}

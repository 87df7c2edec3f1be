import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

@Suite struct IncidentQueryTests {
    static let sendEvent = Ingest.SendEvent

    @Test func getListAndTimeline() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .assignment])
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        var ids: [UInt64] = []
        for key in ["a", "b", "c"] {
            let result: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: key))
            ids.append(result.incidentID)
        }
        let _: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "a"))
        let _: EventResult = try await ingest.call(Self.sendEvent, Event(routingKey: service.routingKey, eventAction: .resolve, dedupKey: "c"))
        // Assignment assigns level 1 once its outbox message arrives.
        let assigned = try await eventually(timeout: .seconds(10)) {
            let info: IncidentInfo = try await assignment.call(Assignment.GetIncident, GetIncidentRequest(incidentID: ids[0]))
            return info.state?.assigneeIDs.count == 2
        }
        #expect(assigned)
        let first: IncidentInfo = try await assignment.call(Assignment.GetIncident, GetIncidentRequest(incidentID: ids[0]))
        #expect(first.title == "Checkout error rate 37%")
        #expect(first.serviceName == "Checkout")
        #expect(first.alertCount == 2)
        #expect(first.state?.status == .triggered)
        #expect(first.state?.level == 1)
        #expect(first.state?.assigneeIDs == service.userIDs.map(UInt64.init))
        #expect((first.state?.escalateAtMs ?? 0) > first.createdAtMs, "the pending escalation timer is shown")

        let open: ListIncidentsReply = try await assignment.call(
            Assignment.ListIncidents, ListIncidentsRequest(statuses: [.triggered, .acknowledged], pageSize: 1))
        #expect(open.incidents.map(\.id) == [ids[1]])
        let next: ListIncidentsReply = try await assignment.call(
            Assignment.ListIncidents, ListIncidentsRequest(statuses: [.triggered, .acknowledged], pageSize: 1, beforeID: open.nextBeforeID))
        #expect(next.incidents.map(\.id) == [ids[0]])
        #expect(next.nextBeforeID == 0)
        let resolved: ListIncidentsReply = try await assignment.call(Assignment.ListIncidents, ListIncidentsRequest(statuses: [.resolved]))
        #expect(resolved.incidents.map(\.id) == [ids[2]])
        #expect(resolved.incidents.first?.resolvedAtMs ?? 0 > 0)
        let all: ListIncidentsReply = try await assignment.call(Assignment.ListIncidents, ListIncidentsRequest(serviceID: UInt64(service.serviceID)))
        #expect(all.incidents.map(\.id) == ids.reversed())

        let timeline: GetTimelineReply = try await assignment.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: ids[0]))
        #expect(Array(timeline.entries.map(\.type).prefix(1)) == ["trigger"])
        #expect(timeline.entries.map(\.type).contains("alert_deduplicated"))
        #expect(timeline.entries.map(\.type).contains("assign"))
        #expect(timeline.entries.first?.details["dedup_key"] == "a")

        do {
            let _: IncidentInfo = try await assignment.call(Assignment.GetIncident, GetIncidentRequest(incidentID: 99_999))
            Issue.record("expected NOT_FOUND")
        } catch let error as RPCError {
            #expect(error.code == .notFound)
        }
        do {
            let _: ListIncidentsReply = try await assignment.call(Assignment.ListIncidents, ListIncidentsRequest(pageSize: 501))
            Issue.record("expected INVALID_ARGUMENT")
        } catch let error as RPCError {
            #expect(error.status.violations.map(\.field) == ["page_size"])
        }
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }
}

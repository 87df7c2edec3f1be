import KlaxonDomain
import Testing

/// The response rules (PRODUCT.md, "Major incident response") on values: no database.
@Suite struct ResponseCoreTests {
    let t0: Millis = 1_800_000_000_000
    let major = ResponseState(incidentID: 7, major: true, status: .triggered, subscribers: [3])

    func apply(_ command: ResponseCommand, _ state: ResponseState, at: Millis? = nil) throws -> ResponseTransition {
        try ResponseCore.apply(command, to: state, now: at ?? t0)
    }

    func timelineTypes(_ transition: ResponseTransition) -> [TimelineType] {
        transition.effects.compactMap { if case let .timeline(entry) = $0 { return entry.type } else { return nil } }
    }

    @Test func aResolvedMajorIncidentsResponseIsClosedAndPagesNobody() throws {
        var resolved = major
        resolved.status = .resolved
        let commands: [ResponseCommand] = [
            .postStatusUpdate(text: "all clear", actor: "a"),
            .requestResponders(users: [1], message: "", role: nil, timeoutSeconds: 300, actor: "a"),
            .assignRole(.commander, user: 1, actor: "a"),
            .relinquishRole(.scribe, user: 1, actor: "a"),
            .subscribe(users: [2], channels: [], actor: "a"),
            .unsubscribe(users: [3], channels: [], actor: "a"),
            .link(children: [9], merge: false, actor: "a"),
            .answer(user: 1, join: true, actor: "a"),
        ]
        for command in commands {
            #expect(throws: IncidentCommandError.failedPrecondition("major incident 7 is resolved: its response is closed")) {
                try apply(command, resolved)
            }
        }
        // An ordinary incident has no response until declared.
        var ordinary = major
        ordinary.major = false
        #expect(throws: IncidentCommandError.failedPrecondition(
            "incident 7 is not a major incident: declare it first (klaxon incident declare 7)")) {
            try apply(.postStatusUpdate(text: "x", actor: "a"), ordinary)
        }
    }

    @Test func pendingRequestsAreCancelledWhenTheIncidentResolves() throws {
        let asked = try apply(.requestResponders(users: [1, 2], message: "join", role: .scribe, timeoutSeconds: 300, actor: "a"), major)
        let joined = try apply(.answer(user: 2, join: true, actor: "b"), asked.state, at: t0 + 10_000)
        let resolved = try apply(.incidentResolved(actor: "c"), joined.state, at: t0 + 20_000)
        #expect(resolved.state.status == .resolved)
        #expect(resolved.state.request(of: 1)?.state == .cancelled && resolved.state.request(of: 1)?.answeredAt == t0 + 20_000)
        #expect(resolved.state.request(of: 2)?.state == .joined, "an answered request keeps its answer")
        #expect(timelineTypes(resolved) == [.responderCancelled])
        #expect(resolved.paged.isEmpty)
    }

    @Test func requestsPageThoseAskedAndRunTheirStateMachine() throws {
        let asked = try apply(.requestResponders(users: [1, 2, 1], message: "DB down", role: .subjectMatterExpert, timeoutSeconds: 60, actor: "a"), major)
        #expect(asked.paged == [1, 2])
        #expect(asked.effects.contains(.page(users: [1, 2], reason: .responderRequest, details: [
            "response.message": "DB down", "response.requested_role": "subject_matter_expert",
        ])))
        #expect(asked.state.requests.map(\.state) == [.pending, .pending])
        #expect(asked.state.request(of: 1)?.timeoutAt == t0 + 60_000)
        // Joining with the role asked for gives it; declining does not.
        let joined = try apply(.answer(user: 1, join: true, actor: "u1"), asked.state, at: t0 + 5_000)
        #expect(joined.state.request(of: 1)?.state == .joined)
        #expect(joined.state.holders(of: .subjectMatterExpert) == [1])
        #expect(timelineTypes(joined) == [.responderJoined, .roleAssigned])
        // Joining twice changes nothing.
        #expect(try apply(.answer(user: 1, join: true, actor: "u1"), joined.state).effects.isEmpty)
        // Someone never asked cannot answer.
        #expect(throws: IncidentCommandError.failedPrecondition("user 5 was not asked to join incident 7")) {
            try apply(.answer(user: 5, join: true, actor: "u5"), joined.state)
        }
        // At the timeout the pending one gets no answer, timelined at the timeout instant.
        let early = try apply(.expireRequests, joined.state, at: t0 + 59_999)
        #expect(early.effects.isEmpty)
        let expired = try apply(.expireRequests, joined.state, at: t0 + 61_000)
        #expect(expired.state.request(of: 2)?.state == .noAnswer)
        #expect(expired.effects == [.timeline(TimelineEntry(at: t0 + 60_000, type: .responderNoAnswer, actor: "klaxon", details: ["user": "2"]))])
        // Asking again re-opens an unanswered request (and pages); a joined person is not asked again.
        let again = try apply(.requestResponders(users: [1, 2], message: "still", role: nil, timeoutSeconds: 300, actor: "a"), expired.state, at: t0 + 70_000)
        #expect(again.paged == [2])
        #expect(again.state.request(of: 2)?.state == .pending && again.state.request(of: 1)?.state == .joined)
        #expect(ResponseCore.nextTimeout(again.state) == t0 + 70_000 + 300_000)
    }

    @Test func requestFieldsAreChecked() {
        #expect(throws: IncidentCommandError.invalidArgument(field: "timeout_seconds", description: "must be 5 to 86400")) {
            try apply(.requestResponders(users: [1], message: "", role: nil, timeoutSeconds: 4, actor: "a"), major)
        }
        #expect(throws: IncidentCommandError.invalidArgument(field: "user_ids", description: "name at least one user, schedule or policy")) {
            try apply(.requestResponders(users: [], message: "", role: nil, timeoutSeconds: 300, actor: "a"), major)
        }
    }

    @Test func oneCommanderAtATimeHandOverAndRelinquish() throws {
        let first = try apply(.assignRole(.commander, user: 1, actor: "a"), major)
        #expect(first.state.holders(of: .commander) == [1])
        let handed = try apply(.assignRole(.commander, user: 2, actor: "a"), first.state, at: t0 + 1)
        #expect(handed.state.holders(of: .commander) == [2])
        #expect(handed.effects.first == .timeline(TimelineEntry(
            at: t0 + 1, type: .roleHandedOver, actor: "a", details: ["role": "commander", "from": "1", "to": "2"])))
        // Several experts at once.
        let experts = try apply(.assignRole(.subjectMatterExpert, user: 3, actor: "a"), try apply(.assignRole(.subjectMatterExpert, user: 4, actor: "a"), handed.state).state)
        #expect(experts.state.holders(of: .subjectMatterExpert) == [4, 3])
        let given = try apply(.relinquishRole(.commander, user: 2, actor: "a"), experts.state)
        #expect(given.state.holders(of: .commander).isEmpty && timelineTypes(given) == [.roleRelinquished])
        #expect(throws: IncidentCommandError.failedPrecondition("user 2 does not hold the role commander on incident 7")) {
            try apply(.relinquishRole(.commander, user: 2, actor: "a"), given.state)
        }
    }

    @Test func statusUpdatesGoToSubscribersAndChannels() throws {
        let subscribed = try apply(.subscribe(users: [4, 3], channels: ["https://hooks.example/T/B/secret"], actor: "a"), major)
        #expect(subscribed.state.subscribers == [3, 4] && subscribed.state.channels == ["https://hooks.example/T/B/secret"])
        #expect(subscribed.effects == [.timeline(TimelineEntry(
            at: t0, type: .note, actor: "a", details: ["subscribed": "4,3", "subscribed_channels": "https://hooks.example/…"]))])
        let update = try apply(.postStatusUpdate(text: "  Mitigated; monitoring  ", actor: "a"), subscribed.state)
        #expect(update.effects == [
            .recordStatusUpdate(author: "a", text: "Mitigated; monitoring", at: t0),
            .timeline(TimelineEntry(at: t0, type: .statusUpdate, actor: "a", details: ["text": "Mitigated; monitoring"])),
            .page(users: [3, 4], reason: .statusUpdate, details: ["response.status_update": "Mitigated; monitoring"]),
            .postToChannels(reason: .statusUpdate, details: ["response.status_update": "Mitigated; monitoring"]),
        ])
        #expect(throws: IncidentCommandError.invalidArgument(field: "text", description: "must be 1 to 4000 characters")) {
            try apply(.postStatusUpdate(text: "   ", actor: "a"), subscribed.state)
        }
        let gone = try apply(.unsubscribe(users: [3], channels: ["https://hooks.example/T/B/secret"], actor: "a"), subscribed.state)
        #expect(gone.state.subscribers == [4] && gone.state.channels.isEmpty)
    }

    @Test func aPlanSetsTheBridgeSubscribesAndAsksEachPersonOnce() throws {
        let plan = ResolvedPlan(
            id: 5, name: "Global outage", bridge: Bridge(conferenceURL: "https://meet.example/war-room", chatChannel: "#inc"),
            message: "Global outage", timeoutSeconds: 120,
            responders: [(.commander, [1]), (.subjectMatterExpert, [2, 1]), (nil, [3])], subscribers: [8], channels: [])
        let applied = try apply(.applyPlan(plan, actor: "surge detection"), major)
        #expect(applied.state.bridge == Bridge(conferenceURL: "https://meet.example/war-room", chatChannel: "#inc", planID: 5))
        #expect(applied.state.subscribers == [3, 8])
        #expect(applied.state.requests.map(\.user) == [1, 2, 3])
        #expect(applied.state.requests.map(\.role) == [.commander, .subjectMatterExpert, nil])
        #expect(applied.paged == [1, 2, 3])
        #expect(timelineTypes(applied).first == .responsePlanApplied)
    }
}

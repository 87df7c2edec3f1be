import KlaxonDomain
import Shared

/// The wire view of an incident's assignment state.
extension IncidentView {
    public init(incidentID: UInt64, state: IncidentState) {
        self.init(
            incidentID: incidentID, status: state.status, level: UInt32(state.level), loop: UInt32(state.loop),
            assigneeIDs: state.assignees,
            acknowledgements: state.acknowledgements.map {
                AcknowledgementView(userID: $0.user ?? 0, actor: $0.actor, atMs: $0.at, closedAtMs: $0.closedAt ?? 0)
            },
            escalateAtMs: state.escalateAt ?? 0, ackTimeoutAtMs: state.ackTimeoutAt ?? 0,
            snoozedUntilMs: state.snoozedUntil ?? 0, autoResolveAtMs: state.autoResolveAt ?? 0, exhausted: state.exhausted,
            heldUntilMs: state.heldUntil ?? 0)
    }
}

/// Roles: commander (one at a time: assigning another hands it over), deputy, scribe, subject
/// matter experts, liaisons (several each). Assign, hand over, relinquish — each timelined.
extension ResponseCore {
    static func assign(_ role: Role, to user: UInt64, actor: String, _ step: inout ResponseStep) {
        if role.isSingle, let previous = step.state.roles.first(where: { $0.role == role && $0.user != user }) {
            step.state.roles.removeAll { $0 == previous }
            step.timeline(.roleHandedOver, actor, ["role": role.rawValue, "from": String(previous.user), "to": String(user)])
        }
        guard !step.state.roles.contains(where: { $0.role == role && $0.user == user }) else { return }
        step.state.roles.append(RoleHolding(role: role, user: user, assignedAt: step.now, assignedBy: actor))
        step.timeline(.roleAssigned, actor, ["role": role.rawValue, "user": String(user)])
    }

    static func relinquish(_ role: Role, user: UInt64, actor: String, _ step: inout ResponseStep) throws(IncidentCommandError) {
        guard step.state.roles.contains(where: { $0.role == role && $0.user == user }) else {
            throw .failedPrecondition("user \(user) does not hold the role \(role.rawValue) on incident \(step.state.incidentID)")
        }
        step.state.roles.removeAll { $0.role == role && $0.user == user }
        step.timeline(.roleRelinquished, actor, ["role": role.rawValue, "user": String(user)])
    }
}

/// A target of an escalation level: a user, or a schedule resolved to whoever is on call.
public enum EscalationTarget: Sendable, Equatable, Hashable {
    case user(UInt64)
    case schedule(UInt64)
}

public struct EscalationLevel: Sendable, Equatable {
    public static let maxTargets = 10
    public var delaySeconds: UInt32
    public var targets: [EscalationTarget]

    public init(delaySeconds: UInt32, targets: [EscalationTarget]) {
        self.delaySeconds = delaySeconds
        self.targets = targets
    }
}

public struct EscalationPolicy: Sendable, Equatable {
    public var levels: [EscalationLevel]
    public var numLoops: Int

    public init(levels: [EscalationLevel], numLoops: Int = 0) {
        self.levels = levels
        self.numLoops = numLoops
    }
}

/// Escalation helpers shared by the incident rules.
public enum EscalationCore {
    /// The union of a level's targets at `now`, schedules resolved, duplicates removed, in
    /// target order.
    public static func assignees(
        of level: EscalationLevel, at now: Millis, resolve: (EscalationTarget, Millis) -> [UInt64]
    ) -> [UInt64] {
        var seen = Set<UInt64>()
        var users: [UInt64] = []
        for target in level.targets {
            for user in resolve(target, now) where seen.insert(user).inserted { users.append(user) }
        }
        return users
    }
}

extension EscalationPolicy {
    public static let maxLevels = 20
    public static let loopRange = 0...9

    /// The limits of PRODUCT.md: 1–20 levels, each with 1–10 targets and a delay ≥ 1 s; 0–9
    /// loops. Each violation names its field (`levels[2].targets` for the third level).
    public func violations() -> [(field: String, description: String)] {
        var violations: [(field: String, description: String)] = []
        if levels.isEmpty || levels.count > Self.maxLevels {
            violations.append(("levels", "must have 1–\(Self.maxLevels) levels, got \(levels.count)"))
        }
        if !Self.loopRange.contains(numLoops) {
            violations.append(("num_loops", "must be 0–9, got \(numLoops)"))
        }
        for (index, level) in levels.enumerated() {
            if level.targets.isEmpty || level.targets.count > EscalationLevel.maxTargets {
                violations.append((
                    "levels[\(index)].targets",
                    "level \(index + 1) must have 1–\(EscalationLevel.maxTargets) targets, got \(level.targets.count)"))
            }
            if level.delaySeconds < 1 {
                violations.append(("levels[\(index)].escalation_delay_seconds", "level \(index + 1) must wait at least 1 second"))
            }
        }
        return violations
    }
}

extension RouteExpression {
    /// Evaluates the expression against a message.
    ///
    /// `undefined` spreads: an operator or function given `undefined`, or values of the wrong or of different
    /// types, yields `undefined`. The exceptions are `??`, which falls back to its right side, the `is_…`
    /// functions, which always answer, and `AND`/`OR`, which are three-valued as in edgeHub: `false AND
    /// undefined` is `false` and `true OR undefined` is `true`.
    ///
    /// - Parameter message: The message whose properties and body the expression reads.
    /// - Returns: The value; a route selects the message only when this is `.bool(true)`.
    public func evaluate(_ message: RouteMessage) -> RouteValue {
        var evaluator = RouteEvaluator(message: message)
        return evaluator.evaluate(self)
    }
}

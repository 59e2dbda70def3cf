/// One MQTT control packet, of either protocol version.
public enum MQTTPacket: Sendable, Hashable {
    /// CONNECT, client to server.
    case connect(MQTTConnect)
    /// CONNACK, server to client.
    case connack(MQTTConnAck)
    /// PUBLISH, both ways.
    case publish(MQTTPublish)
    /// PUBACK, the answer to a QoS 1 PUBLISH.
    case puback(MQTTAck)
    /// PUBREC, the first answer to a QoS 2 PUBLISH.
    case pubrec(MQTTAck)
    /// PUBREL, the answer to PUBREC.
    case pubrel(MQTTAck)
    /// PUBCOMP, the answer to PUBREL.
    case pubcomp(MQTTAck)
    /// SUBSCRIBE, client to server.
    case subscribe(MQTTSubscribe)
    /// SUBACK, server to client.
    case suback(MQTTSubAck)
    /// UNSUBSCRIBE, client to server.
    case unsubscribe(MQTTUnsubscribe)
    /// UNSUBACK, server to client.
    case unsuback(MQTTUnsubAck)
    /// PINGREQ, client to server.
    case pingreq
    /// PINGRESP, server to client.
    case pingresp
    /// DISCONNECT, client to server (and, in MQTT 5, server to client).
    case disconnect(MQTTDisconnect)
    /// AUTH, both ways, MQTT 5 only.
    case auth(MQTTAuth)
}

"""Developer tools: the local Kafka broker, the simulator and its sinks, ``make demo``."""

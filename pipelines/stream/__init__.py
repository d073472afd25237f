"""The live carrier-event stream: broker topology, publisher, consumer, lake landing."""

"""In-memory fakes of each service's unit of work and adapters, for the fast tier."""

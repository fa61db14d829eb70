"""ecrs: an empathetic conversational recommender system."""

"""The Responses API: requests, conversation items, the agent loop, stored responses."""

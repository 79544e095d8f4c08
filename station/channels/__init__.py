"""Verification channels: each turns its devices' readings into a ChannelReport per close.

The daemon builds the configured channels once (`build_channels`), starts them, gathers their
reports concurrently at every close and gives them to the session together. A channel never
touches the session: it reads its devices on its own threads, hands readings to the loop through
`ChannelContext.call_soon`, and reports device health through `ChannelContext.report_health`.
"""

//! ChannelService: channel status and probes, direct sends, and inbound provider webhooks.

use super::Api;
use super::Rpc;
use crate::channels::SendError;
use crate::error::Error;
use clawplane_proto::v1::*;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl channel_service_server::ChannelService for Api {
    async fn list_channels(
        &self,
        req: Request<ListChannelsRequest>,
    ) -> Result<Response<ListChannelsResponse>, Status> {
        self.authorize(&req, Rpc::ChannelListChannels)?;
        Ok(Response::new(ListChannelsResponse {
            channels: self.gw.channels.list(),
        }))
    }

    async fn get_channel(
        &self,
        req: Request<GetChannelRequest>,
    ) -> Result<Response<GetChannelResponse>, Status> {
        self.authorize(&req, Rpc::ChannelGetChannel)?;
        let req = req.into_inner();
        let id = req.channel_id.trim().to_ascii_lowercase();
        let id = id.strip_prefix("channels/").unwrap_or(&id).to_string();
        if id.is_empty() {
            return Err(Error::field(
                "channelId",
                "required: a channel id such as discord, telegram, whatsapp, slack",
            )
            .into());
        }
        match self.gw.channels.status(&id, req.probe).await {
            Some(channel) => Ok(Response::new(GetChannelResponse {
                channel: Some(channel),
            })),
            None => Err(
                Error::Channel(self.gw.channels.check(&id, "").unwrap_or(SendError {
                    reason: "CHANNEL_NOT_CONFIGURED",
                    detail: format!("channel {id:?} is not configured (channels.{id})"),
                    attempts: 0,
                    channel: id.clone(),
                }))
                .into(),
            ),
        }
    }

    async fn send_message(
        &self,
        req: Request<SendMessageRequest>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let caller = self.authorize(&req, Rpc::ChannelSendMessage)?;
        Ok(Response::new(
            self.gw
                .runs
                .send_message(req.into_inner(), &caller.key_scope())
                .await?,
        ))
    }

    async fn ingest_channel_webhook(
        &self,
        req: Request<IngestChannelWebhookRequest>,
    ) -> Result<Response<IngestChannelWebhookResponse>, Status> {
        // The provider's signature is a credential: a locked-out address is refused even
        // with a valid one, and each bad one counts toward the lockout of the client address
        // (the forwarded client behind a trusted proxy).
        let remote = self.client_ip(&req);
        self.auth.gate(remote)?;
        self.authorize(&req, Rpc::ChannelIngestChannelWebhook)?;
        match self.gw.inbound.ingest(req.into_inner(), remote).await {
            Ok(out) => Ok(Response::new(out)),
            Err(e @ (Error::SignatureInvalid(_) | Error::VerifyTokenMismatch(_))) => {
                Err(self.auth.failed(remote, e).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn list_sender_pairings(
        &self,
        req: Request<ListSenderPairingsRequest>,
    ) -> Result<Response<ListSenderPairingsResponse>, Status> {
        self.authorize(&req, Rpc::ChannelListSenderPairings)?;
        Ok(Response::new(
            self.gw.senders.list(&req.into_inner().channel)?,
        ))
    }

    async fn approve_sender_pairing(
        &self,
        req: Request<ApproveSenderPairingRequest>,
    ) -> Result<Response<ApproveSenderPairingResponse>, Status> {
        self.authorize(&req, Rpc::ChannelApproveSenderPairing)?;
        let r = req.into_inner();
        let (request, sender, notification) = self
            .gw
            .senders
            .approve(&r.channel, &r.code, &r.request_id, r.notify)
            .await?;
        Ok(Response::new(ApproveSenderPairingResponse {
            request: Some(request),
            sender: Some(sender),
            notification,
        }))
    }

    async fn reject_sender_pairing(
        &self,
        req: Request<RejectSenderPairingRequest>,
    ) -> Result<Response<RejectSenderPairingResponse>, Status> {
        self.authorize(&req, Rpc::ChannelRejectSenderPairing)?;
        let r = req.into_inner();
        let request = self
            .gw
            .senders
            .reject(&r.channel, &r.code, &r.request_id)
            .await?;
        Ok(Response::new(RejectSenderPairingResponse {
            request: Some(request),
        }))
    }

    async fn revoke_approved_sender(
        &self,
        req: Request<RevokeApprovedSenderRequest>,
    ) -> Result<Response<RevokeApprovedSenderResponse>, Status> {
        self.authorize(&req, Rpc::ChannelRevokeApprovedSender)?;
        let r = req.into_inner();
        let sender = self.gw.senders.revoke(&r.channel, &r.sender_id).await?;
        Ok(Response::new(RevokeApprovedSenderResponse {
            sender: Some(sender),
        }))
    }
}

//! Services whose contract is fixed but whose implementation lands with later features:
//! they authorize, then answer UNIMPLEMENTED naming what is missing.

use super::Api;
use crate::error::Error;
use clawplane_proto::v1::*;
use tonic::{Request, Response, Status};

macro_rules! pending {
    ($trait:path; $( $method:ident($req:ty) -> $resp:ty, $method_name:literal, $name:literal; )*) => {
        #[tonic::async_trait]
        impl $trait for Api {
            $(
                async fn $method(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.authorize(&req, $method_name)?;
                    Err(Error::NotImplemented($name).into())
                }
            )*
        }
    };
}

pending! { channel_service_server::ChannelService;
    list_channels(ListChannelsRequest) -> ListChannelsResponse, "clawplane.v1.ChannelService/ListChannels", "clawplane.v1.ChannelService/ListChannels (channel adapters)";
    get_channel(GetChannelRequest) -> GetChannelResponse, "clawplane.v1.ChannelService/GetChannel", "clawplane.v1.ChannelService/GetChannel (channel adapters)";
    send_message(SendMessageRequest) -> SendMessageResponse, "clawplane.v1.ChannelService/SendMessage", "clawplane.v1.ChannelService/SendMessage (channel delivery)";
}
